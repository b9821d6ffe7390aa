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
// queued → waiting_for_resources (the scheduler cannot place it now, and
// the queue has placed nothing for a second: while it moves, a backlog's
// runs stay queued rather than cost a write each) →
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
// and submit-to-running p50/p99 on an idle node. BenchmarkBacklogDrain
// (-benchtime=1x) reports how fast an all-in-one process drains 2k, 10k
// and 50k queued runs, as runs/s per size. `make bench-scale` runs the
// scale benchmarks (scale_bench_test.go, by hand: minutes and gigabytes):
// the drain of 10k, 100k and 1M queued runs, the heap per waiting run,
// and a restart on 1M stored runs.
//
// # Scale
//
// What the leader does per run does not grow with the backlog: a waiting
// run is held by the scheduler alone (about 240 bytes of heap: its name,
// project, priority, sequence and a shared request); a round stops once
// the runs left can neither bind nor reserve, and binds at most 1,024; the
// rebuild at leadership reads only the placement columns
// (store.ActivePlacements); a node's runs are found through an index of
// bound runs, not among every active one.
//
// # Processes
//
// With Role RoleAll one process is API, scheduler and node agent (SQLite).
// Past one machine, RoleAPI and RoleAgent processes share PostgreSQL: the
// processes with a scheduler compete for a lease in the store and one
// schedules at a time; notifications of committed changes cross processes
// through LISTEN/NOTIFY, so Events, Wait and the agents react at once.
//
// # Parts
//
// The Dispatcher is the public API and the wiring. It builds the
// long-lived parts, each given only what it uses (its store methods as a
// small interface that store.Store satisfies, the logger, the clock, its
// settings, the transition writer, callbacks for its hand-offs) and none
// holding the Dispatcher: the submit writer (submit.go) and the
// transition writer (transitions.go), which group commits; the log writer
// (logs.go); the leader, the scheduler candidate (leader.go, its
// placement in leader_place.go, its state rebuilt from the store in
// leader_state.go); the node agent (agent.go). A part answers questions
// about its state through a method (the leader's summary for Queue),
// never through its lock taken from outside.
//
// # Hand-offs
//
// Work passes between the parts by two routes, each hand-off by both
// where both exist:
//
//	in one process: direct calls      between processes: the store
//	(latency)                         (correctness)
//
//	Submit -> submit writer           commit a run -> NotifySubmitted
//	            | submitted                            | every leader
//	            v                                      v
//	          leader <-----+          leader reads QueuedRunsAfter, commits
//	            |          |          a binding -> NotifyEvent initializing
//	 runStarted |          | released                  | the run's node
//	            v          |                           v
//	          agent -------+          agent reads GetRun, runs, commits the
//	                                  end -> NotifyEvent ended or requeued
//	Abort ----> agent.abort                            | every leader
//	            (run on this node)                     v
//	                                  leader forgets it (re-reads a requeue)
//	                                  RequestAbort -> NotifyAbort -> agent
//
//	lost notifications: NotifyOverflow rebuilds the leader's state and
//	rescans the agent; every 5 s the leader re-reads queued runs, the
//	agent its node's runs, Wait and Events their run.
//
// The direct calls exist for latency within one process (RoleAll, where
// every hand-off is local): a run submitted here reaches the leader
// without waiting for its notification and a read of the store; a run
// bound to this process's node starts in the commit that binds it,
// recorded initializing and running at once; the devices of an attempt
// whose function returned are placed again while its outcome is being
// committed (while few outcomes wait: past maxEarlyReleases, at its
// commit, so that binding cannot outrun the recording of outcomes).
//
// The store's notifications exist for correctness: they are the only
// route between processes (a RoleAPI leader, RoleAgent agents). They are
// hints to re-read the store, never the data, and may be lost (a slow
// listener, a dropped connection): NotifyOverflow and the periodic
// rescans, which read the store itself, make up for them, and for a
// direct call its receiver could not take (a leader not leading yet).
// A hand-off that arrives by both routes
// is handled once: the leader skips its own process's NotifySubmitted,
// the agent its own process's NotifyEvent initializing (a store publishes
// a commit's notifications to its process's listeners at commit, before
// the leader calls runStarted) and an attempt it already runs, the
// leader a release of an
// attempt it no longer holds; and every phase change is a conditional
// transition, so a stale hand-off changes nothing.
//
// # Observing
//
// Config.Observer hears of every submit, attempt end, run end, scheduling
// round and group commit, for metrics (framework wires it to Prometheus;
// this package never imports it); Queue and Nodes answer the rest when
// asked. With Config.TracerProvider, Submit keeps the W3C traceparent of
// its caller's span with the run, and each attempt's span, in whichever
// process runs it and after restarts, is a child of it; the task
// function's ctx carries that span.
//
// # Place on the data path
//
// request → auth → environment → dispatcher → scheduler → node agent →
// store → callbacks: environments call Submit; the leader feeds the pure
// scheduler (tasks/scheduler) and the node agent runs what it places, on
// the inventory tasks/discovery finds, both through the store
// (tasks/store), whose outbox tasks/callback drains. It must not import
// framework, environments or middleware (the caller's identity comes from
// middleware/identity, a leaf); depguard in .golangci.yml enforces it.
package dispatch
