// Package soak holds the soak test of the quickstart, built with the soak
// tag and run by hand (`make soak`), never by `make test` or CI: it takes
// ten minutes by default.
//
// The test builds examples/quickstart once, starts it as a subprocess
// (SQLite, all-in-one), drives mixed load at it over loopback and SIGKILLs
// and restarts it at a fixed period, then checks that no acknowledged run
// was lost, that valid requests got no 5xx outside the restarts, and that
// the process did not grow. It prints a summary table.
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
