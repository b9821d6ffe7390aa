// Package dispatch runs tasks durably: it accepts runs, stores them before
// answering, places them with the scheduler, executes them on node agents,
// retries them, and reports every phase change.
//
//	st, _ := sqlite.OpenDir(ctx, dataDir)
//	d, err := dispatch.New(dispatch.Config{Store: st, Registry: reg})
//	if err != nil {
//		return err
//	}
//	if err := d.Start(ctx); err != nil { // recovers runs a crash interrupted
//		return err
//	}
//	defer d.Close(shutdownCtx)
//	run, _, err := d.Submit(ctx, dispatch.SubmitRequest{Task: echo.Definition(), Inputs: in, Caller: id})
//	done, err := d.Wait(ctx, run.Name)
//
// # Durability
//
// Submit returns only once the run is committed (SQLite in WAL mode with
// synchronous=FULL, or PostgreSQL's default commit). Concurrent submits are
// grouped: a writer goroutine takes every request waiting when it starts a
// transaction (up to 1024), commits them with one fsync and answers them
// all, so throughput grows with concurrency while a lone request waits for
// no timer. Phase changes go through a second such writer.
//
// Every phase change is a conditional update on the run's phase and attempt
// number. A run is marked succeeded only by the attempt that is current, so
// an attempt that outlives its node's death (or a restart) cannot record a
// second success.
//
// # Lifecycle
//
// queued → waiting_for_resources (the scheduler cannot place it now) →
// initializing (bound to a node and devices: a new attempt; a run bound to
// the scheduler's own process records initializing and running in one
// commit) → running →
// succeeded | failed | aborted | timed_out. A retry goes from running back
// to queued as a new attempt, delayed by the task's backoff.
//
//   - An error counts as a failure; the run fails once the task's
//     RetryPolicy.MaxAttempts failures are reached. tasks.Permanent fails it
//     at once; tasks.RetryAfter(d) tries again after d without counting.
//   - Each attempt has the task's Timeout. A timed-out attempt is a failure
//     like any other: the retry policy decides whether another attempt
//     follows, and the run ends timed_out when none does.
//   - Abort: a queued or waiting run is aborted at once; a running run has
//     its context cancelled and is marked aborted when its function returns,
//     or after AbortGrace if it does not.
//   - Outputs over MaxOutputBytes fail the run with an error that says so.
//   - A node that misses HeartbeatTimeout, or restarts, loses its attempts:
//     each goes back to the queue as a new attempt, counted as a failure (so
//     a task that kills its node cannot loop forever). A graceful Close
//     requeues unfinished attempts without counting a failure.
//   - Terminal runs keep their inputs, outputs and logs for Retention.
//
// # Figures
//
// BenchmarkSubmit and BenchmarkSubmitToRunning (go test -bench . with
// TASKGATE_TEST_POSTGRES_URL set for PostgreSQL) report accepted runs per
// second beside a one-run-per-transaction baseline on the same database,
// and submit-to-running p50/p99 on an idle node.
//
// # Processes
//
// With Role RoleAll one process is API, scheduler and node agent (SQLite).
// Past one machine, RoleAPI and RoleAgent processes share PostgreSQL: the
// processes with a scheduler compete for a lease in the store and one
// schedules at a time; notifications of committed changes cross processes
// through LISTEN/NOTIFY, so Events, Wait and the agents react at once.
//
// # Place on the data path
//
// request → auth → environment → dispatcher → scheduler → node agent →
// store → callbacks: environments call Submit; the leader feeds the pure
// scheduler (tasks/scheduler) and the node agent runs what it places, on
// the inventory tasks/discovery finds, both through the store
// (tasks/store), whose outbox tasks/callback drains. It must not import
// middleware (the caller is middleware/identity), environments or
// framework.
package dispatch
