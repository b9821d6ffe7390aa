// Package frameworktest helps test services built on taskgate. Its Issuer is
// a real OpenID Connect issuer on an httptest server: discovery document,
// JWKS with an RSA and an EC key, key rotation, a client credentials token
// endpoint, and token minting, including the malformed and forged tokens a
// verifier must refuse. The issuer lives in middleware/oidctest (so that
// middleware's tests need not import framework); the names here are aliases
// of it.
//
//	func TestMe(t *testing.T) {
//		iss := frameworktest.NewIssuer(t)
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
// Serve starts an App and serves it on a loopback server for the length of
// a test, stopping it (OnStop hooks included) when the test ends.
//
// Everything here is for tests: methods fail the test (or panic) on error
// rather than returning it. On the data path (request → auth → environment
// → dispatcher → scheduler → node agent → store → callbacks) it drives a
// whole App from the outside; it may import any taskgate package, and none
// may import it outside tests.
package frameworktest
