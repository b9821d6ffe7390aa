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
// # When the store fails
//
// A store error (a full disk, a lost database: store.ErrUnavailable) never
// makes a loop spin. The scheduler's round, the agent's rescan and the
// writes of outcomes wait a capped exponential backoff with jitter (100 ms
// doubling to 5 s) before trying again, the scheduler rebuilding its state
// from the store first; heartbeats keep their interval. Each loop logs the
// first error, then every 30 s how many since, then its recovery. An
// outcome the store cannot take while unavailable is tried until it is
// back, and task log lines wait in their bounded buffer, so no finished
// run is left running. Submit returns the store's error, which
// store.ErrDiskFull and store.ErrUnavailable match (HTTP 507 and 503).
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
//   - What an attempt's end does to its run is decided in one place
//     (decide in outcome.go), wherever the attempt ended: on its node, at a
//     restart's recovery, or by the scheduler that lost its node.
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
//   - Interruptions are not failures. A node that misses HeartbeatTimeout,
//     restarts, or drains interrupts its attempts: each goes back to the
//     queue at once as a new attempt, marked interrupted, without spending
//     the retry policy, so a rolling deploy or a crash loop never fails
//     work that did not fail. What stops a task that kills its node from
//     looping for ever is its own budget: past MaxInterruptions (the
//     task's Options.MaxInterruptions, else Config.MaxInterruptions,
//     default 10) the run fails with an error that says so. A run asked to
//     abort is aborted instead.
//   - Drain (and Close): the process takes no new submit (ErrClosed) and
//     its node no new attempt; running attempts may finish for
//     DrainTimeout (default 30 s), then the rest are cancelled and
//     requeued as interruptions. Ready reports draining meanwhile, for a
//     readiness probe.
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
