// Package genclients tests clients that generators make from taskgate's
// committed OpenAPI documents against a real server: a Go client by
// oapi-codegen (from openapi-3.0.yaml, package api) and a TypeScript one by
// openapi-typescript and openapi-fetch (from openapi.yaml, folder ts).
// `make clients` generates both and runs the test.
//
// It is a module of its own, so that the generators and oapi-codegen's
// runtime never become dependencies of the framework. It stands beside the
// data path (request → auth → environment → dispatcher → …) as one of its
// callers.
package genclients
