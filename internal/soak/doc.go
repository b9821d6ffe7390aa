// Package soak holds the soak test of the quickstart, built with the soak
// tag and run by hand (`make soak`), never by `make test` or CI: it takes
// ten minutes by default.
//
// The test builds examples/quickstart once, starts it as a subprocess
// (SQLite, all-in-one) and drives mixed load at it over loopback: echo,
// sleep and flaky submits with and without an Idempotency-Key, with signed
// callbacks to a loopback receiver the test runs, with Prefer: wait;
// followers of /run/{name}/events; GET /run/{name} and GET /runs; aborts;
// and 1% bad requests (bad JSON, bad bytes in the body, the key or the
// callback URL, an unknown task, no token, an oversize body). Meanwhile it
// SIGKILLs and restarts the process at a fixed period. It prints a
// Markdown summary and fails when:
//
//   - an acknowledged (2xx) run is 404, is not terminal SOAK_DRAIN after
//     the load, or did not succeed (aborted is fine for a run the load
//     asked to abort);
//   - a valid request got a 5xx or no answer outside a restart window, or
//     an answer the API does not promise for it at any time;
//   - a callback never arrived, was about another run or was badly signed;
//     an event stream's ids did not grow, or it ended with another phase
//     than its run;
//   - the process died on its own or did not start again;
//   - RSS, goroutines or open file descriptors grew beyond 10% (below).
//
// Reported without failing: callbacks that arrived out of order, bad
// requests accepted or answered with another 4xx than expected, the log's
// ERROR and WARN lines, how long the final SIGTERM took.
//
//	make soak
//	SOAK_DURATION=3m SOAK_RESTART_EVERY=1m make soak
//	go test -tags soak -timeout 30m -v ./internal/soak/
//
// Settings (environment variables; Go durations):
//
//	SOAK_DURATION       length of the load                        10m
//	SOAK_RESTART_EVERY  SIGKILL and restart period (0: never)     2m
//	SOAK_RATE           operations started per second             100
//	SOAK_WORKERS        operations in flight at most              16
//	SOAK_FOLLOWERS      concurrent /run/{name}/events followers   4
//	SOAK_RESTART_GRACE  how long after a restart's /health 200
//	                    failures still count as the restart's     2s
//	SOAK_DRAIN          how long runs may take to end after load  3m
//
// # What counts as a restart window
//
// A request whose lifetime [sent, answered] overlaps [SIGKILL, first 200 of
// /health after the restart + SOAK_RESTART_GRACE] may fail with a
// connection error or a 5xx: it is counted apart and, for a submit with an
// Idempotency-Key, sent again with the same key. The same failure at any
// other time fails the test. A death of the process that the test did not
// cause opens no window.
//
// # How growth is measured fairly
//
// The process restarts every SOAK_RESTART_EVERY, so no single process
// lives from minute 2 to minute 10. RSS, goroutines and open file
// descriptors are sampled every 2 s from the process alive at that moment
// and tagged with its instance. Each instance's figure is the median of its
// samples in the last 20 s before it was killed (or before the load
// ended): the same age after a start, under the same load, and a median so
// that one burst of requests in flight does not decide it. The first
// instance's figure (minute 2 by default) is compared with the last
// instance that lived as long (minute 10): growth beyond 10% fails. What
// this catches is growth that survives a restart: the database, the
// recovery of interrupted runs, the outbox. What grows only within one
// process is shown in the per-instance table (early and late medians of
// each instance) for a reader to judge, and SOAK_RESTART_EVERY=0 runs one
// process for the whole duration, where the comparison is minute 2 against
// the end of that one process.
//
// Goroutines: the quickstart has no endpoint that counts them, and none is
// added to it for this. The soak's build of the quickstart adds one file
// through `go build -overlay` (testdata/soakdebug.go), which serves the
// count and a goroutine profile on a second loopback listener named by
// SOAK_DEBUG_ADDR; the committed quickstart is unchanged.
package soak
