// Command gen rewrites the committed OpenAPI documents (make generate).
//
// It stands beside the data path (request → auth → environment →
// dispatcher → scheduler → node agent → store → callbacks) as the generator
// `make generate` runs; it imports only package openapi.
package main
