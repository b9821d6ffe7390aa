package client

import (
	"errors"
	"net/http"

	"golang.org/x/oauth2"
)

// Credentials authenticate a request. BearerToken, OAuth2 and KeySecret
// are the forms taskgate's authenticators verify; implement it for others
// (a session cookie).
type Credentials interface {
	// Apply sets the request's credential headers. It is called for every
	// attempt, so a token that expired between retries is renewed.
	Apply(req *http.Request) error
}

// BearerToken is a static token sent as "Authorization: Bearer <token>":
// a static token of TASKGATE_AUTH_TOKENS, or an OIDC/JWT access token.
type BearerToken string

// Apply implements Credentials.
func (t BearerToken) Apply(req *http.Request) error {
	if t == "" {
		return errors.New("empty bearer token")
	}
	req.Header.Set("Authorization", "Bearer "+string(t))
	return nil
}

// OAuth2 sends the tokens of ts (client credentials, a refreshed user
// token…), renewed when they expire.
func OAuth2(ts oauth2.TokenSource) Credentials {
	return oauth2Credentials{oauth2.ReuseTokenSource(nil, ts)}
}

type oauth2Credentials struct{ ts oauth2.TokenSource }

func (o oauth2Credentials) Apply(req *http.Request) error {
	tok, err := o.ts.Token()
	if err != nil {
		return err
	}
	tok.SetAuthHeader(req)
	return nil
}

// The headers of a key+secret pair by default, Modal's names (taskgate's
// middleware.DefaultKeyHeader and DefaultSecretHeader).
const (
	DefaultKeyHeader    = "Modal-Key"
	DefaultSecretHeader = "Modal-Secret"
)

// KeySecret is a key id and its secret, sent in two headers as Modal's
// proxy auth tokens are (middleware.KeySecret verifies them).
type KeySecret struct {
	Key    string
	Secret string
	// KeyHeader and SecretHeader name the headers; default
	// DefaultKeyHeader and DefaultSecretHeader.
	KeyHeader    string
	SecretHeader string
}

// Apply implements Credentials.
func (k KeySecret) Apply(req *http.Request) error {
	if k.Key == "" || k.Secret == "" {
		return errors.New("key+secret pair with an empty key or secret")
	}
	names := k.headerNames()
	req.Header.Set(names[0], k.Key)
	req.Header.Set(names[1], k.Secret)
	return nil
}

// headerNamer is credentials sent in custom headers, which a redirect to
// another host must drop.
type headerNamer interface{ headerNames() []string }

func (k KeySecret) headerNames() []string {
	key, secret := k.KeyHeader, k.SecretHeader
	if key == "" {
		key = DefaultKeyHeader
	}
	if secret == "" {
		secret = DefaultSecretHeader
	}
	return []string{key, secret}
}
