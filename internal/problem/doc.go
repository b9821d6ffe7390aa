// Package problem writes RFC 9457 problem+json responses from plain net/http
// handlers and middleware, in the same shape huma uses for its own errors, so a
// client sees one error format whatever layer refused the request. Its type
// is negotiated by one rule, ContentTypeFor, which huma's errors use too:
// problem+json unless the request prefers application/json, which then
// gets the same body under that type (fal's client reads no other).
//
// On the data path (request → auth → environment → dispatcher → scheduler →
// node agent → store → callbacks) it is how the first steps refuse a
// request: middleware, environments and framework write their errors with
// it. It imports only the standard library and huma, and must not import any
// taskgate package: middleware imports it.
package problem
