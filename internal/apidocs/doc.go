// Package apidocs creates the huma API of an environment and serves its
// browsable docs at /docs from assets compiled into the binary: Swagger UI
// from github.com/swaggo/files/v2, behind a Content-Security-Policy that
// allows nothing but the server's own origin. No page of the docs loads
// anything from a CDN.
//
// On the data path (request → auth → environment → dispatcher → scheduler →
// node agent → store → callbacks) it serves the environment step: each
// environment builds its huma API with it. It must not import any taskgate
// package: environments import it.
package apidocs
