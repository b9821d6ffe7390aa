package middleware_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/middleware/oidctest"
)

func TestOIDCValidTokenReachesHandler(t *testing.T) {
	t.Parallel()
	f := newOIDCFixture(t, nil)
	claims := map[string]any{
		"sub":    "alice",
		"name":   "Alice Liddell",
		"email":  "alice@example.com",
		"groups": []string{"admins", "ml"},
	}
	for name, tok := range map[string]string{
		"RS256": f.iss.Mint(claims),
		"ES256": f.iss.Mint(claims, oidctest.WithKey(oidctest.EC)),
	} {
		t.Run(name, func(t *testing.T) {
			resp, body := f.app.do(t, http.MethodGet, "/me", bearer(tok))
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			var me meResponse
			require.NoError(t, json.Unmarshal([]byte(body), &me))
			require.Equal(t, "alice", me.Subject)
			require.Equal(t, "Alice Liddell", me.Name)
			require.Equal(t, "alice@example.com", me.Email)
			require.Equal(t, []string{"admins", "ml"}, me.Groups)
			require.Equal(t, "bearer", me.Source)
			require.True(t, me.Admin)
		})
	}
}

func TestOIDCRefusesBadTokens(t *testing.T) {
	t.Parallel()
	f := newOIDCFixture(t, nil)
	iss := f.iss
	valid := iss.Mint(nil)
	lastDot := strings.LastIndexByte(valid, '.')
	tests := []struct {
		name   string
		header http.Header
	}{
		{"expired", bearer(iss.MintExpired(nil))},
		{"not yet valid", bearer(iss.MintNotYetValid(nil))},
		{"issued in the future", bearer(iss.Mint(map[string]any{"iat": f.clock.Now().Add(time.Hour).Unix()}))},
		{"no exp", bearer(iss.Mint(map[string]any{"exp": nil}))},
		{"exp not a number", bearer(iss.Mint(map[string]any{"exp": "tomorrow"}))},
		{"no sub", bearer(iss.Mint(map[string]any{"sub": nil}))},
		{"wrong audience", bearer(iss.MintWrongAudience(nil))},
		{"wrong issuer", bearer(iss.MintWrongIssuer(nil))},
		{"alg none", bearer(iss.MintAlgNone(nil))},
		{"HS256 signed with the public key", bearer(iss.MintHS256WithPublicKey(nil))},
		{"tampered payload", bearer(oidctest.TamperPayload(t, valid, map[string]any{"sub": "admin"}))},
		{"truncated signature", bearer(valid[:len(valid)-10])},
		{"signature removed", bearer(valid[:lastDot+1])},
		{"two segments", bearer(valid[:lastDot])},
		{"unknown kid", bearer(iss.MintUnknownKID(nil))},
		{"kid of the EC key on an RSA signature", bearer(iss.Mint(nil, oidctest.WithKeyID(iss.KeyID(oidctest.EC))))},
		{"over 8 KiB", bearer(strings.Repeat("a", middleware.MaxCredentialSize+1))},
		{"8 KiB JWT", bearer(iss.Mint(map[string]any{"pad": strings.Repeat("x", 8<<10)}))},
		{"non-ASCII bytes", bearer(valid[:20] + "é" + valid[20:])},
		{"space inside", bearer(valid[:20] + " " + valid[20:])},
		{"empty bearer", http.Header{"Authorization": {"Bearer "}}},
		{"scheme only", http.Header{"Authorization": {"Bearer"}}},
		{"two Authorization headers", http.Header{"Authorization": {"Bearer " + valid, "Bearer " + valid}}},
		{"random string", bearer("definitely-not-a-token")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := f.app.do(t, http.MethodGet, "/me", tt.header)
			requireRefused(t, resp, body, true)
		})
	}
	t.Run("control", func(t *testing.T) {
		t.Parallel()
		resp, body := f.app.do(t, http.MethodGet, "/me", bearer(valid))
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
	})
}

func TestOIDCNoCredentials(t *testing.T) {
	t.Parallel()
	f := newOIDCFixture(t, nil)
	for name, h := range map[string]http.Header{
		"none":         nil,
		"basic scheme": {"Authorization": {"Basic YWxhZGRpbjpvcGVuc2VzYW1l"}},
	} {
		t.Run(name, func(t *testing.T) {
			resp, body := f.app.do(t, http.MethodGet, "/me", h)
			requireRefused(t, resp, body, false)
		})
	}
}

func TestOIDCLeeway(t *testing.T) {
	t.Parallel()
	f := newOIDCFixture(t, func(c *middleware.OIDCConfig) { c.Leeway = time.Minute })
	now := f.clock.Now()
	tests := []struct {
		name   string
		claims map[string]any
		want   int
	}{
		{"expired within leeway", map[string]any{"exp": now.Add(-50 * time.Second).Unix()}, http.StatusOK},
		{"expired beyond leeway", map[string]any{"exp": now.Add(-70 * time.Second).Unix()}, http.StatusUnauthorized},
		{"nbf within leeway", map[string]any{"nbf": now.Add(50 * time.Second).Unix()}, http.StatusOK},
		{"nbf beyond leeway", map[string]any{"nbf": now.Add(70 * time.Second).Unix()}, http.StatusUnauthorized},
		{"iat within leeway", map[string]any{"iat": now.Add(50 * time.Second).Unix()}, http.StatusOK},
		{"iat beyond leeway", map[string]any{"iat": now.Add(70 * time.Second).Unix()}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := f.app.do(t, http.MethodGet, "/me", bearer(f.iss.Mint(tt.claims)))
			require.Equal(t, tt.want, resp.StatusCode, body)
		})
	}
}

func TestOIDCConfigValidation(t *testing.T) {
	t.Parallel()
	iss := oidctest.NewIssuer(t)
	base := middleware.OIDCConfig{Issuer: iss.URL, Audience: iss.Audience, HTTPClient: iss.Client()}
	tests := []struct {
		name string
		mod  func(*middleware.OIDCConfig)
	}{
		{"no issuer", func(c *middleware.OIDCConfig) { c.Issuer = "" }},
		{"no audience", func(c *middleware.OIDCConfig) { c.Audience = "" }},
		{"leeway over 2m", func(c *middleware.OIDCConfig) { c.Leeway = 3 * time.Minute }},
		{"negative leeway", func(c *middleware.OIDCConfig) { c.Leeway = -time.Second }},
		{"HS256", func(c *middleware.OIDCConfig) { c.Algorithms = []string{"HS256"} }},
		{"none", func(c *middleware.OIDCConfig) { c.Algorithms = []string{"none"} }},
		{"negative interval", func(c *middleware.OIDCConfig) { c.KeyRefetchInterval = -time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.mod(&cfg)
			_, err := middleware.NewOIDC(t.Context(), cfg)
			require.ErrorIs(t, err, middleware.ErrInvalidOIDCConfig)
		})
	}
	t.Run("issuer that is not the discovery issuer", func(t *testing.T) {
		cfg := base
		cfg.Issuer = iss.URL + "/other"
		_, err := middleware.NewOIDC(t.Context(), cfg)
		require.Error(t, err)
	})
}

func TestOIDCExplicitJWKSURLSkipsDiscovery(t *testing.T) {
	t.Parallel()
	iss := oidctest.NewIssuer(t)
	auth, err := middleware.NewOIDC(t.Context(), middleware.OIDCConfig{
		Issuer: iss.URL, Audience: iss.Audience, JWKSURL: iss.JWKSURL(), HTTPClient: iss.Client(),
	})
	require.NoError(t, err)
	id, err := auth.Authenticate(t.Context(), middleware.Credentials{Source: middleware.SourceBearer, Value: iss.Mint(map[string]any{"sub": "bob"})})
	require.NoError(t, err)
	require.Equal(t, "bob", id.Subject)
	require.Zero(t, iss.DiscoveryFetches())
	require.EqualValues(t, 1, iss.JWKSFetches())
}

func TestOIDCGroupsClaim(t *testing.T) {
	t.Parallel()
	f := newOIDCFixture(t, func(c *middleware.OIDCConfig) { c.GroupsClaim = "roles" })
	tests := []struct {
		name   string
		claims map[string]any
		want   []string
	}{
		{"list", map[string]any{"roles": []any{"a", 7, "b", ""}}, []string{"a", "b"}},
		{"single string", map[string]any{"roles": "solo"}, []string{"solo"}},
		{"absent", nil, []string{}},
		{"other claim ignored", map[string]any{"groups": []string{"x"}}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := f.auth.Authenticate(t.Context(), middleware.Credentials{Source: middleware.SourceBearer, Value: f.iss.Mint(tt.claims)})
			require.NoError(t, err)
			require.Equal(t, tt.want, id.Groups)
		})
	}
}

// flood sends n tokens with random kids from 20 goroutines, all refused.
func flood(t *testing.T, f *oidcFixture, n int) {
	t.Helper()
	toks := make(chan string, n)
	for i := range n {
		// ES256 signs in microseconds where RS256 takes milliseconds.
		toks <- f.iss.Mint(nil, oidctest.WithKey(oidctest.EC), oidctest.WithKeyID(fmt.Sprintf("random-%d-%d", i, rand.Int64())))
	}
	close(toks)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for tok := range toks {
				_, err := f.auth.Authenticate(t.Context(), middleware.Credentials{Source: middleware.SourceBearer, Value: tok})
				if err == nil {
					t.Error("token with unknown kid accepted")
				}
			}
		})
	}
	wg.Wait()
}

func TestOIDCUnknownKIDFloodFetchesAtMostOncePerInterval(t *testing.T) {
	t.Parallel()
	f := newOIDCFixture(t, func(c *middleware.OIDCConfig) { c.KeyRefetchInterval = time.Minute })
	require.EqualValues(t, 1, f.iss.JWKSFetches(), "NewOIDC fetches the key set once")

	flood(t, f, 200)
	require.EqualValues(t, 1, f.iss.JWKSFetches(), "within the interval of the first fetch: no refetch")

	f.clock.Advance(time.Minute)
	flood(t, f, 200)
	require.EqualValues(t, 2, f.iss.JWKSFetches(), "one interval later: exactly one refetch for 200 unknown kids")

	f.clock.Advance(59 * time.Second)
	flood(t, f, 200)
	require.EqualValues(t, 2, f.iss.JWKSFetches())

	resp, body := f.app.do(t, http.MethodGet, "/me", bearer(f.iss.Mint(nil)))
	require.Equal(t, http.StatusOK, resp.StatusCode, "valid tokens still pass during a flood: %s", body)
}

func TestOIDCKeyRotation(t *testing.T) {
	t.Parallel()
	f := newOIDCFixture(t, nil)
	old := f.iss.Mint(nil)
	verify := func(tok string) error {
		_, err := f.auth.Authenticate(t.Context(), middleware.Credentials{Source: middleware.SourceBearer, Value: tok})
		return err
	}
	require.NoError(t, verify(old))

	f.iss.Rotate()
	rotated := f.iss.Mint(nil)
	require.ErrorIs(t, verify(rotated), middleware.ErrInvalidCredentials, "new kid within the refetch interval")
	require.EqualValues(t, 1, f.iss.JWKSFetches())

	f.clock.Advance(time.Minute)
	// Tokens must still be fresh after the clock moved.
	rotated = f.iss.Mint(nil)
	require.NoError(t, verify(rotated), "new kid after the interval: refetched")
	require.EqualValues(t, 2, f.iss.JWKSFetches())
	require.ErrorIs(t, verify(f.iss.Mint(nil, oidctest.WithKeyID(f.iss.KeyID(oidctest.EC)))), middleware.ErrInvalidCredentials)
}

func TestOIDCWithdrawnKeyStopsVerifyingAfterKeyMaxAge(t *testing.T) {
	t.Parallel()
	f := newOIDCFixture(t, func(c *middleware.OIDCConfig) { c.KeyMaxAge = time.Hour })
	verify := func(tok string) error {
		_, err := f.auth.Authenticate(t.Context(), middleware.Credentials{Source: middleware.SourceBearer, Value: tok})
		return err
	}
	f.clock.Advance(59 * time.Minute)
	old := f.iss.Mint(nil)
	require.NoError(t, verify(old))
	f.iss.Rotate() // withdraws the key that signed old
	require.NoError(t, verify(old), "keys not yet stale: no refetch")
	require.EqualValues(t, 1, f.iss.JWKSFetches())

	f.clock.Advance(time.Minute)
	require.ErrorIs(t, verify(old), middleware.ErrInvalidCredentials, "stale keys refetched; the withdrawn key is gone")
	require.EqualValues(t, 2, f.iss.JWKSFetches())
	require.NoError(t, verify(f.iss.Mint(nil)))
	require.EqualValues(t, 2, f.iss.JWKSFetches())
}

func TestOIDCKeepsServingWhenTheIssuerIsDown(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	f := newOIDCFixtureIntercepted(t, func(*http.Request) error {
		if down.Load() {
			return errors.New("issuer unreachable")
		}
		return nil
	})
	down.Store(true)
	f.clock.Advance(2 * time.Hour) // stale keys, refetch fails
	tok := f.iss.Mint(nil)
	_, err := f.auth.Authenticate(t.Context(), middleware.Credentials{Source: middleware.SourceBearer, Value: tok})
	require.NoError(t, err, "the old keys keep serving")
}

// newOIDCFixtureIntercepted is newOIDCFixture whose HTTP client (with no
// Timeout of its own, as a client built by hand may have none) asks
// intercept first: an error fails the request, nil lets it reach the
// issuer.
func newOIDCFixtureIntercepted(t *testing.T, intercept func(*http.Request) error) *oidcFixture {
	t.Helper()
	return newOIDCFixture(t, func(c *middleware.OIDCConfig) {
		base := c.HTTPClient.Transport
		c.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if err := intercept(r); err != nil {
				return nil, err
			}
			return base.RoundTrip(r)
		})}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestOIDCHangingIssuerDoesNotHoldRequests: once the keys are stale, an
// issuer whose key endpoint never answers must not hold requests that the
// keys in hand verify: they wait at most staleKeysWait (1 s) for the
// refetch, then go on with the old keys.
func TestOIDCHangingIssuerDoesNotHoldRequests(t *testing.T) {
	t.Parallel()
	var hang atomic.Bool
	f := newOIDCFixtureIntercepted(t, func(r *http.Request) error {
		if hang.Load() && r.URL.Path == "/keys" {
			<-r.Context().Done()
			return r.Context().Err()
		}
		return nil
	})
	tok := f.iss.Mint(nil)
	_, err := f.auth.Authenticate(t.Context(), middleware.Credentials{Source: middleware.SourceBearer, Value: tok})
	require.NoError(t, err)
	hang.Store(true)
	f.clock.Advance(2 * time.Hour) // stale keys: the refetch hangs
	for i := range 3 {
		tok := f.iss.Mint(nil)
		done := make(chan error, 1)
		go func() {
			_, err := f.auth.Authenticate(t.Context(), middleware.Credentials{Source: middleware.SourceBearer, Value: tok})
			done <- err
		}()
		select {
		case err := <-done:
			require.NoError(t, err, "request %d: the old keys verify it", i)
		case <-time.After(5 * time.Second):
			t.Fatalf("request %d still waits on the hanging issuer", i)
		}
	}
}
