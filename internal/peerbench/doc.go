// Package peerbench measures taskgate beside River (riverqueue/river), the
// job queue a Go user would otherwise pick, in the same process, the same
// run and on the same database: River's insert rate beside taskgate's
// submit rate, and River's work rate on a backlog beside taskgate's drain
// rate, on SQLite and on PostgreSQL.
//
// It is a module of its own (its go.mod replaces the framework with
// ../..), so River never becomes a dependency of taskgate; `go build ./...`
// at the root skips it, as it skips every nested module. It holds only
// benchmarks; run them with `make bench-peer`:
//
//	cd internal/peerbench && go test -run '^$' -bench . -benchtime 1x -count 3
//
// Each benchmark op measures River, then taskgate, on fresh databases, and
// reports both rates and their ratio, so that -count alternates the two
// systems (River, taskgate, River, taskgate) on a machine whose load
// changes.
//
// Place on the data path (request → auth → environment → dispatcher →
// scheduler → node agent → store → callbacks): beside it, a harness that
// drives the dispatcher and the stores; nothing imports it.
package peerbench
