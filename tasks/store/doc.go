// Package store defines the durable state of taskgate behind one interface,
// Store, and the types it exchanges. Two implementations share the
// conformance suite in package storetest:
//
//   - tasks/store/sqlite, one SQLite file (the default, single process);
//   - tasks/store/postgres, PostgreSQL shared by several processes.
//
// The store knows runs, not tasks: phases change only through conditional
// Transitions (expected phase, attempt number, node), which is how racing
// actors — a node finishing a run, a scheduler requeueing it after a missed
// heartbeat — agree on one outcome, and how a run can never be marked
// succeeded twice. Writes take slices so that callers can group the work of
// many concurrent requests into one transaction and one fsync.
//
// Errors of the database itself (not of a call's arguments) match
// ErrUnavailable, and a full disk ErrDiskFull, whatever the driver: callers
// wait and try again, and the API answers 503 or 507.
//
// The outbox for webhook callbacks lives here too: the phase change that
// causes a callback enqueues it in the same transaction, and a delivery
// worker drains it. A run's deliveries are claimed in order (Delivery.Seq),
// each once the one before was settled:
//
//	for {
//		ds, err := st.ClaimDueDeliveries(ctx, time.Now(), 50)
//		// handle err
//		for _, d := range ds {
//			status, err := post(d) // sign with webhook-id d.ID
//			st.RecordDeliveryAttempt(ctx, d.ID, store.DeliveryAttempt{
//				At: time.Now(), StatusCode: status, Error: errString(err),
//				Done: status/100 == 2 || status == http.StatusGone || giveUp(d),
//				NextAttemptAt: time.Now().Add(backoff(d)),
//			})
//		}
//	}
//
// On the data path (request → auth → environment → dispatcher → scheduler →
// node agent → store → callbacks) the store is what the dispatcher and its
// node agents write through and the callback worker reads. It imports only
// tasks and middleware/identity: never the dispatcher, the scheduler, an
// HTTP layer, middleware, environments or framework.
package store
