// Package storetest is the conformance suite every store.Store passes:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openFresh(t) })
//	}
//
// open must return an empty store for each call; Run closes it.
//
// The cases are grouped by concern as the Store's methods are: submit.go
// (CreateRuns, idempotency keys), transition.go and transition_batch.go
// (Transition, RequestAbort), reads.go, logs.go, nodes.go (nodes and the
// lease), outbox.go (webhook deliveries), retention.go and store.go (Ping,
// Listen); storetest.go holds Run, the list of cases, and their helpers.
//
// It stands beside the data path (request → auth → environment →
// dispatcher → scheduler → node agent → store → callbacks) as the store
// step's specification: the tests of tasks/store/sqlite and
// tasks/store/postgres run it. It imports tasks, tasks/store and testify
// only, never an implementation (each passes itself in), the dispatcher,
// middleware, environments or framework.
package storetest
