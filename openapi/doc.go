// Package openapi keeps the committed OpenAPI documents of the quickstart's
// webhook environment (openapi.yaml, 3.1, and openapi-3.0.yaml) and
// generates them from a real App: `make generate` rewrites them, and a test
// fails when they are stale. Its tests validate the 3.0 and 3.1 documents
// of each kind of environment that serves documents (webhook, app with a
// queue) with kin-openapi; internal/genclients runs generated clients of
// them against a real server (make clients).
//
// It stands beside the data path (request → auth → environment →
// dispatcher → scheduler → node agent → store → callbacks): it renders the
// environment step's API as documents. It imports framework and the
// quickstart's demo (which make lint allows here); library code must not
// import it.
package openapi
