// Package identity holds the verified caller of a request and carries it in
// a context. It is the one type that crosses the whole data path (request →
// auth → environment → dispatcher → scheduler → node agent → store →
// callbacks): the middleware's authenticators produce it, environments read
// it to submit runs, the dispatcher keeps its stored part (store.Caller)
// with each run, and a task function sees it again through tasks.RunInfo.
//
// It is a leaf: it imports only the standard library, so that the tasks
// packages can know the caller without importing net/http, OIDC or any
// other part of middleware. Package middleware re-exports it
// (middleware.Identity, middleware.IdentityFromContext).
//
//	ctx = identity.NewContext(ctx, identity.Identity{Subject: "alice", Groups: []string{"admins"}})
//	id, ok := identity.FromContext(ctx) // id.InGroup("admins") == true
package identity
