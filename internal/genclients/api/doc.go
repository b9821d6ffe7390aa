// Package api is the Go client oapi-codegen generates from the committed
// OpenAPI 3.0 document (make clients writes api.gen.go, which is not
// committed: it is regenerated from the document every time).
package api
