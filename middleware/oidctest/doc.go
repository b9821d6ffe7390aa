// Package oidctest is a real OpenID Connect issuer on an httptest server, for
// tests: discovery document, JWKS with an RSA and an EC key, key rotation, a
// client credentials token endpoint, a browser sign-in (an /authorize
// endpoint that issues codes, exchanged at /token with PKCE for an ID
// token with the nonce), and token minting, including the malformed and
// forged tokens a verifier must refuse. On the data path
// (request → auth → environment → dispatcher → scheduler → node agent →
// store → callbacks) it stands in for the identity provider in front of
// auth.
//
//	func TestMe(t *testing.T) {
//		iss := oidctest.NewIssuer(t)
//		auth, err := middleware.NewOIDC(t.Context(), middleware.OIDCConfig{
//			Issuer:     iss.URL,
//			Audience:   iss.Audience,
//			HTTPClient: iss.Client(),
//		})
//		// ...
//		tok := iss.Mint(map[string]any{"sub": "alice", "groups": []string{"admins"}})
//		req.Header.Set("Authorization", "Bearer "+tok)
//	}
//
// It sits beside middleware so that middleware's own tests can use it, and
// imports nothing of taskgate: not middleware, and never framework,
// environments or tasks. framework/frameworktest re-exports it. Methods fail
// the test (or panic) on error rather than returning it.
package oidctest
