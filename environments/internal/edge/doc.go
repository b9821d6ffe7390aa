// Package edge is what every environment's HTTP API does at its edge, on
// the way in and on the way out, written once for the webhook environment,
// app environments and the queue:
//
//   - in: bodies are JSON in UTF-8 (415 otherwise), text that would be
//     stored must be storable as it is (422 naming the field), callback
//     URLs and their event filters are checked (edge.go, callbacks.go);
//   - out: the one table from the dispatcher's and the store's errors to
//     HTTP problems (Problem), and the transformer of every error body:
//     a 500 shows the request id alone and logs the error, other errors
//     echo at most a short prefix of what was sent (problems.go);
//   - Server-Sent Events responses (stream.go).
//
// It sits on the data path between the auth middleware and the dispatcher:
// request → auth → environment (→ edge) → dispatcher. It must not import
// environments or any of its subpackages, which all import it.
package edge
