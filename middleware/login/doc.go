// Package login signs browsers in: a session cookie (middleware.Sessions)
// in exchange for a sign-in at an OpenID Connect issuer (authorization
// code flow with PKCE, state and nonce, through golang.org/x/oauth2 and
// go-oidc), or, without one, for a token pasted on a small server-rendered
// page. The cookie holds a random session id, never a token; the server
// keeps the session, so signing out ends it in every process.
//
// A framework App mounts it at /auth/ when App.Login is configured; a
// service on its own router mounts it the same way:
//
//	sessions := middleware.NewSessions(middleware.SessionsConfig{Store: st})
//	h, err := login.New(ctx, login.Config{
//		Sessions:      sessions,
//		Authenticator: tokens, // what the page checks a pasted token with
//		ExternalURL:   "https://gpu.example.com",
//	})
//	r.Handle("/auth/*", h) // it routes on the whole path
//	// and sessions in front of the passthrough's authenticator:
//	auth := middleware.Chain(sessions, tokens)
//
// Pages that want a signed-in browser put middleware.RequireLogin after
// an Optional Passthrough: it sends the browser here with ?next= the page.
//
// On the data path (request → auth → environment → …) it is part of auth:
// it imports middleware and nothing of tasks, environments or framework.
package login
