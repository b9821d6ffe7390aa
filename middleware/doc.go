// Package middleware authenticates the callers of a taskgate service and
// lets the service act on their behalf. Everything has chi's shape,
// func(http.Handler) http.Handler, and works with any net/http router.
//
// # Passthrough authentication
//
// [Passthrough] runs three steps on every request that is not for an
// excluded path (/health, /docs, the OpenAPI documents, /schemas/...):
//
//  1. Extractors find the caller's credential: an "Authorization: Bearer"
//     header ([BearerExtractor]) or fal's "Authorization: Key" verified
//     alike ([KeyExtractor]), a session cookie ([CookieExtractor]), a
//     custom header ([HeaderExtractor]) or a Modal-style key+secret pair
//     ([KeySecretExtractor]). Malformed credentials (two Authorization
//     headers, an empty bearer, control or non-ASCII bytes, more than
//     [MaxCredentialSize]) are refused before anything else looks at them.
//  2. An [Authenticator] verifies it: [OIDC] (JWTs checked with go-oidc
//     against the issuer's keys), [StaticTokens] (TASKGATE_AUTH_TOKENS),
//     [KeySecret], any of them in a [Chain], and a [Cache] in front so a
//     repeated token costs a SHA-256 and a map lookup instead of a signature
//     check.
//  3. The verified [Identity] and the [Credentials] go into the request
//     context: [IdentityFromContext], [CredentialsFromContext], [IsAdmin].
//
// A browser's session cookie holds a session id that [Sessions] resolves,
// uncached, to the identity a sign-in at /auth/login (package
// middleware/login) kept in a [SessionStore]; [RequireLogin] sends a
// browser that has none there.
//
// Refusals are 401 problem+json with a Bearer challenge that never says why;
// cookie-authenticated unsafe requests must pass a CSRF check (403
// otherwise); a required group gives 403 to everyone else. Credentials are
// never logged: [Credentials] redacts itself in fmt, slog and JSON.
//
// # Acting on the caller's behalf
//
// [ForwardingTransport] puts the caller's token on outgoing requests to an
// allowlist of hosts, and nothing on requests to any other host.
// [ClientCredentials] is the service's own identity, for calls it makes for
// itself.
//
// # Example
//
//	tokens, err := middleware.ParseStaticTokens(os.Getenv("TASKGATE_AUTH_TOKENS"))
//	if err != nil {
//		return err // names the bad entry, never quotes a token
//	}
//	oidcAuth, err := middleware.NewOIDC(ctx, middleware.OIDCConfig{
//		Issuer:   "https://accounts.example.com",
//		Audience: "taskgate",
//	})
//	if err != nil {
//		return err
//	}
//	auth := middleware.NewCache(middleware.Chain(tokens, oidcAuth), middleware.CacheConfig{})
//
//	r := chi.NewRouter()
//	r.Use(middleware.Passthrough(middleware.PassthroughConfig{
//		Authenticator: auth,
//		AdminGroup:    "admins",
//	}))
//	downstream := &http.Client{Transport: middleware.ForwardingTransport(nil, []string{"reports.internal:8443"})}
//	r.Get("/me", func(w http.ResponseWriter, r *http.Request) {
//		id, _ := middleware.IdentityFromContext(r.Context())
//		json.NewEncoder(w).Encode(id)
//		// Requests built with r.Context() carry the caller's token
//		// to reports.internal:8443, and to no other host.
//		req, _ := http.NewRequestWithContext(r.Context(), "GET", "https://reports.internal:8443/v1/mine", nil)
//		downstream.Do(req)
//	})
//
// Each refusal is also noted, with its reason, in the request's
// report (package middleware/report) when whoever serves the middleware put
// one in the context, with the verified caller's subject: the App counts
// refusals by reason and logs the subject without middleware knowing of
// metrics.
//
// The package also holds the request limits (body size, body time,
// concurrency, rate) and the verifier for signed webhooks. [BodyTimeout]
// goes outermost: it bounds how long a body may take to arrive, and lets a
// refusal (401, 404, 413, 429…) go out at once instead of after net/http
// read the unread body.
//
// # Place on the data path
//
// request → auth → environment → dispatcher → scheduler → node agent →
// store → callbacks: middleware is auth, the first step after the request,
// and the receiving end of callbacks (VerifyWebhook). It must not import
// tasks, environments or framework, not even in tests (they use
// middleware/oidctest). The verified caller lives in middleware/identity so
// that the steps below can name it without importing middleware.
package middleware
