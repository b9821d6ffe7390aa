package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// DefaultAudience is the "aud" of tokens minted without one.
const DefaultAudience = "taskgate"

// DefaultSubject is the "sub" of tokens minted without one.
const DefaultSubject = "test-user"

// Issuer is a local OpenID Connect issuer served by httptest. It publishes
// /.well-known/openid-configuration and a JWKS at /keys holding one RSA
// (RS256) and one EC P-256 (ES256) key, answers client credentials grants
// at /token, and signs browsers in with the authorization code flow and
// PKCE: /authorize issues a code for the user SignInAs names (or whom its
// form is told), and /token
// exchanges it for an ID token carrying the request's nonce. It is safe
// for concurrent use.
type Issuer struct {
	// URL is the issuer URL, the "iss" of minted tokens.
	URL string
	// Audience is the "aud" of minted tokens by default: DefaultAudience.
	Audience string
	// Now is the clock used for iat/exp defaults. Set it before minting
	// concurrently. Default time.Now.
	Now func() time.Time

	t   testing.TB
	srv *httptest.Server

	mu      sync.Mutex
	rsa     signingKey
	ec      signingKey
	clients map[string]string // client id -> secret

	loginClients map[string]loginClient
	grants       map[string]grant // by code
	user         map[string]any   // SignInAs

	jwksFetches      atomic.Int64
	discoveryFetches atomic.Int64
	authorizations   atomic.Int64
	pkceFailures     atomic.Int64
}

type signingKey struct {
	priv crypto.Signer
	kid  string
	alg  jose.SignatureAlgorithm
}

// KeyType picks the key that signs a minted token.
type KeyType int

// Key types of the Issuer.
const (
	RSA KeyType = iota // RS256, the default
	EC                 // ES256 on P-256
)

// NewIssuer starts an issuer that stops when the test ends.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	iss := &Issuer{
		Audience: DefaultAudience,
		Now:      time.Now,
		t:        t,
		rsa:      newRSAKey(t),
		ec:       newECKey(t),
		clients:  map[string]string{},

		loginClients: map[string]loginClient{},
		grants:       map[string]grant{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", iss.serveDiscovery)
	mux.HandleFunc("GET /keys", iss.serveJWKS)
	mux.HandleFunc("POST /token", iss.serveToken)
	mux.HandleFunc("GET /authorize", iss.serveAuthorize)
	mux.HandleFunc("POST /authorize", iss.serveAuthorize)
	iss.srv = httptest.NewServer(mux)
	iss.URL = iss.srv.URL
	t.Cleanup(iss.srv.Close)
	return iss
}

func newRSAKey(t testing.TB) signingKey {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("oidctest: rsa key: %v", err)
	}
	return signingKey{priv: priv, kid: "rsa-" + rand.Text()[:8], alg: jose.RS256}
}

func newECKey(t testing.TB) signingKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("oidctest: ec key: %v", err)
	}
	return signingKey{priv: priv, kid: "ec-" + rand.Text()[:8], alg: jose.ES256}
}

// JWKSURL returns the URL of the key set.
func (i *Issuer) JWKSURL() string { return i.URL + "/keys" }

// TokenURL returns the URL of the client credentials token endpoint.
func (i *Issuer) TokenURL() string { return i.URL + "/token" }

// Client returns an HTTP client for the issuer's server.
func (i *Issuer) Client() *http.Client { return i.srv.Client() }

// JWKSFetches returns how many times the key set was fetched.
func (i *Issuer) JWKSFetches() int64 { return i.jwksFetches.Load() }

// DiscoveryFetches returns how many times the discovery document was fetched.
func (i *Issuer) DiscoveryFetches() int64 { return i.discoveryFetches.Load() }

// KeyID returns the key id currently used for keys of type kt.
func (i *Issuer) KeyID(kt KeyType) string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.key(kt).kid
}

func (i *Issuer) key(kt KeyType) signingKey {
	if kt == EC {
		return i.ec
	}
	return i.rsa
}

// Rotate replaces the RSA key with a new one under a new key id. The old
// key is no longer published, so tokens it signed stop verifying once a
// verifier refetches the key set.
func (i *Issuer) Rotate() {
	k := newRSAKey(i.t)
	i.mu.Lock()
	i.rsa = k
	i.mu.Unlock()
}

// AddClient registers a client for the client credentials grant. Its
// tokens have the client id as "sub".
func (i *Issuer) AddClient(id, secret string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.clients[id] = secret
}

// MintOption changes how Mint signs a token.
type MintOption func(*mintOptions)

type mintOptions struct {
	key    KeyType
	kid    *string
	header map[jose.HeaderKey]any
}

// WithKey signs with the key of type kt instead of the RSA key.
func WithKey(kt KeyType) MintOption { return func(o *mintOptions) { o.key = kt } }

// WithKeyID puts kid in the header instead of the signing key's id; ""
// leaves the kid header out.
func WithKeyID(kid string) MintOption { return func(o *mintOptions) { o.kid = &kid } }

// WithHeader adds a protected header.
func WithHeader(name string, value any) MintOption {
	return func(o *mintOptions) {
		if o.header == nil {
			o.header = map[jose.HeaderKey]any{}
		}
		o.header[jose.HeaderKey(name)] = value
	}
}

// Claims returns the default claims of a minted token merged with claims:
// iss, aud, sub, iat (now) and exp (in an hour). A nil value in claims
// removes that claim.
func (i *Issuer) Claims(claims map[string]any) map[string]any {
	now := i.Now()
	c := map[string]any{
		"iss": i.URL,
		"aud": i.Audience,
		"sub": DefaultSubject,
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// Mint returns a signed JWT with the default claims merged with claims (see
// Claims), signed by the RSA key unless an option says otherwise.
func (i *Issuer) Mint(claims map[string]any, opts ...MintOption) string {
	var o mintOptions
	for _, opt := range opts {
		opt(&o)
	}
	i.mu.Lock()
	k := i.key(o.key)
	i.mu.Unlock()
	kid := k.kid
	if o.kid != nil {
		kid = *o.kid
	}
	return i.sign(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, kid, o.header, i.Claims(claims))
}

func (i *Issuer) sign(key jose.SigningKey, kid string, header map[jose.HeaderKey]any, claims map[string]any) string {
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	for k, v := range header {
		opts = opts.WithHeader(k, v)
	}
	signer, err := jose.NewSigner(key, opts)
	if err != nil {
		i.t.Fatalf("oidctest: signer: %v", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		i.t.Fatalf("oidctest: claims: %v", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		i.t.Fatalf("oidctest: sign: %v", err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		i.t.Fatalf("oidctest: serialize: %v", err)
	}
	return tok
}

// with returns claims (which may be nil) with extra set, claims winning.
func with(claims map[string]any, extra map[string]any) map[string]any {
	out := maps.Clone(extra)
	maps.Copy(out, claims)
	return out
}

// MintExpired mints a token that expired an hour ago.
func (i *Issuer) MintExpired(claims map[string]any) string {
	now := i.Now()
	return i.Mint(with(claims, map[string]any{
		"iat": now.Add(-2 * time.Hour).Unix(),
		"exp": now.Add(-time.Hour).Unix(),
	}))
}

// MintNotYetValid mints a token whose nbf is an hour from now.
func (i *Issuer) MintNotYetValid(claims map[string]any) string {
	now := i.Now()
	return i.Mint(with(claims, map[string]any{
		"nbf": now.Add(time.Hour).Unix(),
		"exp": now.Add(2 * time.Hour).Unix(),
	}))
}

// MintWrongAudience mints a token for another audience.
func (i *Issuer) MintWrongAudience(claims map[string]any) string {
	return i.Mint(with(claims, map[string]any{"aud": "someone-else"}))
}

// MintWrongIssuer mints a token, signed by this issuer's key, that claims
// another issuer.
func (i *Issuer) MintWrongIssuer(claims map[string]any) string {
	return i.Mint(with(claims, map[string]any{"iss": "https://issuer.invalid"}))
}

// MintUnknownKID mints a token signed by the RSA key but naming a key id
// the key set does not hold (a new random one per call).
func (i *Issuer) MintUnknownKID(claims map[string]any) string {
	return i.Mint(claims, WithKeyID("unknown-"+rand.Text()))
}

// MintAlgNone mints an unsigned token with "alg": "none" (RFC 7519 section
// 6), naming the RSA key id.
func (i *Issuer) MintAlgNone(claims map[string]any) string {
	header, _ := json.Marshal(map[string]any{"alg": "none", "typ": "JWT", "kid": i.KeyID(RSA)})
	payload, err := json.Marshal(i.Claims(claims))
	if err != nil {
		i.t.Fatalf("oidctest: claims: %v", err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(header) + "." + enc.EncodeToString(payload) + "."
}

// MintHS256WithPublicKey mints the algorithm confusion forgery: HS256 with
// the RSA public key (its PEM text, as published) as the HMAC secret,
// naming the RSA key id. A verifier that lets the token pick the algorithm
// accepts it.
func (i *Issuer) MintHS256WithPublicKey(claims map[string]any) string {
	i.mu.Lock()
	k := i.rsa
	i.mu.Unlock()
	der, err := x509.MarshalPKIXPublicKey(k.priv.Public())
	if err != nil {
		i.t.Fatalf("oidctest: public key: %v", err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return i.sign(jose.SigningKey{Algorithm: jose.HS256, Key: secret}, k.kid, nil, i.Claims(claims))
}

// TamperPayload returns token with claims changed in its payload and the
// original signature kept: a forgery a verifier must refuse.
func TamperPayload(t testing.TB, token string, claims map[string]any) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("oidctest: TamperPayload: not a compact JWS")
	}
	enc := base64.RawURLEncoding
	raw, err := enc.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("oidctest: TamperPayload: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("oidctest: TamperPayload: %v", err)
	}
	maps.Copy(c, claims)
	raw, _ = json.Marshal(c)
	parts[1] = enc.EncodeToString(raw)
	return strings.Join(parts, ".")
}

func (i *Issuer) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	i.discoveryFetches.Add(1)
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                i.URL,
		"jwks_uri":                              i.JWKSURL(),
		"token_endpoint":                        i.TokenURL(),
		"authorization_endpoint":                i.URL + "/authorize",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		"grant_types_supported":                 []string{"client_credentials", "authorization_code"},
		"code_challenge_methods_supported":      []string{"S256"},
	})
}

func (i *Issuer) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	i.jwksFetches.Add(1)
	i.mu.Lock()
	keys := []signingKey{i.rsa, i.ec}
	i.mu.Unlock()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{
			Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig",
		})
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, set)
}

// serveToken answers the client credentials grant (RFC 6749 section 4.4)
// with client_secret_basic or client_secret_post authentication, and the
// authorization code grant (exchangeCode).
func (i *Issuer) serveToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "client_credentials":
	case "authorization_code":
		i.exchangeCode(w, r)
		return
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	i.mu.Lock()
	want, known := i.clients[id]
	i.mu.Unlock()
	if !known || subtle.ConstantTimeCompare([]byte(secret), []byte(want)) != 1 {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	claims := map[string]any{"sub": id, "client_id": id}
	if aud := r.PostForm.Get("audience"); aud != "" {
		claims["aud"] = aud
	}
	if scope := r.PostForm.Get("scope"); scope != "" {
		claims["scope"] = scope
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": i.Mint(claims),
		"token_type":   "Bearer",
		"expires_in":   3600,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
