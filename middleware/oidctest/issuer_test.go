package oidctest_test

import (
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/taskgate/taskgate/middleware/oidctest"
)

// TestIssuerVerifiesWithGoOIDC checks the issuer against go-oidc's own
// discovery and remote key set, independently of package middleware.
func TestIssuerVerifiesWithGoOIDC(t *testing.T) {
	t.Parallel()
	iss := oidctest.NewIssuer(t)
	ctx := oidc.ClientContext(t.Context(), iss.Client())
	p, err := oidc.NewProvider(ctx, iss.URL)
	if err != nil {
		t.Fatal(err)
	}
	v := p.VerifierContext(ctx, &oidc.Config{ClientID: oidctest.DefaultAudience, SupportedSigningAlgs: []string{oidc.RS256, oidc.ES256}})

	for name, tok := range map[string]string{
		"RSA": iss.Mint(map[string]any{"sub": "alice"}),
		"EC":  iss.Mint(map[string]any{"sub": "alice"}, oidctest.WithKey(oidctest.EC)),
	} {
		idt, err := v.Verify(ctx, tok)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if idt.Subject != "alice" || time.Until(idt.Expiry) < 59*time.Minute {
			t.Fatalf("%s: subject %q, expiry %v", name, idt.Subject, idt.Expiry)
		}
	}
	for name, tok := range map[string]string{
		"expired":        iss.MintExpired(nil),
		"wrong audience": iss.MintWrongAudience(nil),
		"wrong issuer":   iss.MintWrongIssuer(nil),
		"alg none":       iss.MintAlgNone(nil),
		"HS256":          iss.MintHS256WithPublicKey(nil),
		"unknown kid":    iss.MintUnknownKID(nil),
		"tampered":       oidctest.TamperPayload(t, iss.Mint(nil), map[string]any{"sub": "mallory"}),
	} {
		if _, err := v.Verify(ctx, tok); err == nil {
			t.Errorf("%s: go-oidc accepted the token", name)
		}
	}
	if iss.DiscoveryFetches() != 1 || iss.JWKSFetches() < 1 {
		t.Fatalf("fetch counters: discovery %d, jwks %d", iss.DiscoveryFetches(), iss.JWKSFetches())
	}
}

func TestIssuerRotate(t *testing.T) {
	t.Parallel()
	iss := oidctest.NewIssuer(t)
	before := iss.KeyID(oidctest.RSA)
	iss.Rotate()
	if after := iss.KeyID(oidctest.RSA); after == before || after == "" {
		t.Fatalf("kid %q after rotation, %q before", after, before)
	}
}

func TestIssuerClaims(t *testing.T) {
	t.Parallel()
	iss := oidctest.NewIssuer(t)
	c := iss.Claims(map[string]any{"sub": "bob", "exp": nil, "email": "bob@example.com"})
	if c["sub"] != "bob" || c["email"] != "bob@example.com" || c["iss"] != iss.URL || c["aud"] != iss.Audience {
		t.Fatalf("claims %v", c)
	}
	if _, ok := c["exp"]; ok {
		t.Fatalf("exp not removed: %v", c)
	}
}
