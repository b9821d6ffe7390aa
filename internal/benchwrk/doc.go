// Command benchwrk measures POST /run-task the way the throughput goal is
// stated: wrk over loopback, against the quickstart's stack with a bearer
// token, beside a bare chi handler served to the same wrk settings in the
// same run. `make bench-wrk` runs it (and installs wrk when missing).
//
// For each database (SQLite in a temporary directory; PostgreSQL in a fresh
// database when TASKGATE_TEST_POSTGRES_URL is set) it serves the stack
// twice: as `make run` does (scheduler and node agent executing the echo
// runs in the same process) and as an API process alone (TASKGATE_ROLE=agent
// without an agent's work: no scheduler, so runs stay queued), the submit
// path by itself. Every 202 is a run fsynced before the reply.
//
// Any non-2xx reply or socket error fails the run.
//
// It stands beside the data path (request → auth → environment →
// dispatcher → scheduler → node agent → store → callbacks) as a benchmark
// tool that loads its first steps over HTTP. It imports internal/benchstack
// for the stack it measures; being a command, nothing imports it.
package main
