package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// MaxLeeway is the largest clock skew OIDCConfig.Leeway may allow.
const MaxLeeway = 2 * time.Minute

// ErrInvalidOIDCConfig is wrapped by every configuration error of NewOIDC.
var ErrInvalidOIDCConfig = errors.New("middleware: invalid OIDC config")

// asymmetricAlgs are the algorithms a token verified with a public key may
// use. HMAC ("HS256") and "none" are absent on purpose: with a public key
// set they are forgery vectors.
var asymmetricAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512,
	oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.EdDSA,
}

// OIDCConfig configures NewOIDC. Issuer and Audience are required; the zero
// value of every other field is a sensible default.
type OIDCConfig struct {
	// Issuer is the issuer URL; tokens must carry it as "iss". Unless JWKSURL
	// is set, the key set is found through its discovery document
	// (Issuer + "/.well-known/openid-configuration").
	Issuer string
	// Audience must be one of the token's "aud" values.
	Audience string
	// JWKSURL, when set, is used instead of discovery.
	JWKSURL string
	// Algorithms allowed to sign tokens. Default RS256 and ES256. Only
	// asymmetric algorithms are accepted.
	Algorithms []string
	// Leeway tolerates clock skew on exp, nbf and iat. At most MaxLeeway;
	// zero means none.
	Leeway time.Duration
	// KeyRefetchInterval is the least time between two fetches of the key
	// set caused by tokens naming unknown keys. Default one minute.
	KeyRefetchInterval time.Duration
	// KeyMaxAge is how long a fetched key set is trusted before it is
	// fetched again, so that withdrawn keys stop verifying. Default one
	// hour.
	KeyMaxAge time.Duration
	// HTTPClient fetches discovery and keys. Default: a client with a 10 s
	// timeout.
	HTTPClient *http.Client
	// GroupsClaim names the claim holding the caller's groups, a list of
	// strings or one string. Default "groups".
	GroupsClaim string
	// Logger receives key set fetch failures. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now; tests inject their own.
	Now func() time.Time
}

func (c *OIDCConfig) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidOIDCConfig}, args...)...)
	}
	switch {
	case c.Issuer == "":
		return bad("Issuer is required")
	case c.Audience == "":
		return bad("Audience is required")
	case c.Leeway < 0 || c.Leeway > MaxLeeway:
		return bad("Leeway %v is outside [0, %v]", c.Leeway, MaxLeeway)
	case c.KeyRefetchInterval < 0:
		return bad("KeyRefetchInterval %v is negative", c.KeyRefetchInterval)
	case c.KeyMaxAge < 0:
		return bad("KeyMaxAge %v is negative", c.KeyMaxAge)
	}
	for _, a := range c.Algorithms {
		if !slices.Contains(asymmetricAlgs, a) {
			return bad("Algorithms: %q is not an asymmetric JWS algorithm", a)
		}
	}
	if len(c.Algorithms) == 0 {
		c.Algorithms = []string{oidc.RS256, oidc.ES256}
	}
	if c.KeyRefetchInterval == 0 {
		c.KeyRefetchInterval = time.Minute
	}
	if c.KeyMaxAge == 0 {
		c.KeyMaxAge = time.Hour
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.GroupsClaim == "" {
		c.GroupsClaim = "groups"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// OIDC authenticates OIDC / JWT bearer tokens with go-oidc, against a key set
// found by discovery or given as JWKSURL. It checks the signature, the
// algorithm, "iss", "aud", "exp" (required), "nbf" and "iat" (with the
// configured leeway), and that "sub" is set.
type OIDC struct {
	cfg      OIDCConfig
	keys     *keySet
	verifier *oidc.IDTokenVerifier
}

var _ Authenticator = (*OIDC)(nil)

// NewOIDC runs discovery (unless cfg.JWKSURL is set) and fetches the key set
// once, so that a wrong issuer URL fails at startup rather than on the first
// request.
func NewOIDC(ctx context.Context, cfg OIDCConfig) (*OIDC, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	jwksURL := cfg.JWKSURL
	if jwksURL == "" {
		p, err := oidc.NewProvider(oidc.ClientContext(ctx, cfg.HTTPClient), cfg.Issuer)
		if err != nil {
			return nil, fmt.Errorf("middleware: oidc discovery: %w", err)
		}
		var meta struct {
			JWKSURI string `json:"jwks_uri"`
		}
		if err := p.Claims(&meta); err != nil || meta.JWKSURI == "" {
			return nil, fmt.Errorf("middleware: oidc discovery: no jwks_uri in the provider metadata")
		}
		jwksURL = meta.JWKSURI
	}
	algs := make([]jose.SignatureAlgorithm, len(cfg.Algorithms))
	for i, a := range cfg.Algorithms {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	ks := &keySet{
		url:      jwksURL,
		client:   cfg.HTTPClient,
		interval: cfg.KeyRefetchInterval,
		maxAge:   cfg.KeyMaxAge,
		now:      cfg.Now,
		algs:     algs,
		logger:   cfg.Logger,
	}
	if _, err := ks.refresh(ctx); err != nil {
		return nil, err
	}
	v := oidc.NewVerifier(cfg.Issuer, ks, &oidc.Config{
		ClientID:             cfg.Audience,
		SupportedSigningAlgs: cfg.Algorithms,
		// go-oidc checks exp with no leeway and nbf with a fixed five
		// minutes; the time checks are done in Authenticate instead.
		SkipExpiryCheck: true,
		Now:             cfg.Now,
	})
	return &OIDC{cfg: cfg, keys: ks, verifier: v}, nil
}

func refuse(reason string) error { return fmt.Errorf("%w: %s", ErrInvalidCredentials, reason) }

// Authenticate verifies a JWT carried by a bearer, cookie or custom header
// credential. Every refusal wraps ErrInvalidCredentials; its message is for
// logs and never contains the token.
func (o *OIDC) Authenticate(ctx context.Context, c Credentials) (Identity, error) {
	// A JWS compact token has exactly two dots; anything else (a static
	// token, a key+secret pair) is not ours and is refused without parsing.
	if c.Source == SourceKeySecret || strings.Count(c.Value, ".") != 2 {
		return Identity{}, refuse("not a JWT")
	}
	tok, err := o.verifier.Verify(ctx, c.Value)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidCredentials, err)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return Identity{}, refuse("claims are not a JSON object")
	}
	now := o.cfg.Now()
	exp, ok := numericDate(claims["exp"])
	switch {
	case !ok:
		return Identity{}, refuse("exp missing or not a number")
	case !now.Before(exp.Add(o.cfg.Leeway)):
		return Identity{}, refuse("token expired")
	}
	if v, present := claims["nbf"]; present {
		nbf, ok := numericDate(v)
		if !ok || now.Add(o.cfg.Leeway).Before(nbf) {
			return Identity{}, refuse("token not yet valid")
		}
	}
	if v, present := claims["iat"]; present {
		iat, ok := numericDate(v)
		if !ok || now.Add(o.cfg.Leeway).Before(iat) {
			return Identity{}, refuse("token issued in the future")
		}
	}
	if tok.Subject == "" {
		return Identity{}, refuse("no sub")
	}
	id := Identity{
		Subject: tok.Subject,
		Name:    stringClaim(claims, "name"),
		Email:   stringClaim(claims, "email"),
		Groups:  groupsClaim(claims[o.cfg.GroupsClaim]),
		Claims:  claims,
		Expiry:  exp,
	}
	if id.Name == "" {
		id.Name = stringClaim(claims, "preferred_username")
	}
	return id, nil
}

// numericDate converts a JWT NumericDate (seconds since the epoch, possibly
// fractional) decoded by encoding/json.
func numericDate(v any) (time.Time, bool) {
	f, ok := v.(float64)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1<<40 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

func stringClaim(claims map[string]any, name string) string {
	s, _ := claims[name].(string)
	return s
}

// groupsClaim accepts a list of strings (non-strings are skipped) or a
// single string, as issuers differ.
func groupsClaim(v any) []string {
	switch g := v.(type) {
	case string:
		if g == "" {
			return []string{}
		}
		return []string{g}
	case []any:
		groups := make([]string, 0, len(g))
		for _, x := range g {
			if s, ok := x.(string); ok && s != "" {
				groups = append(groups, s)
			}
		}
		return groups
	default:
		return []string{}
	}
}
