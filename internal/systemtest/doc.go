// Package systemtest holds process-level tests of taskgate: they build the
// real quickstart binary once per test run, start it as separate processes
// on loopback, talk to it over HTTP as a client would, and kill it with
// SIGKILL to check what the durable store promises.
//
// The tests are slow by nature and skip under -short:
//
//	go test -short ./internal/systemtest/     # skips, fast
//	go test -v ./internal/systemtest/         # crash test on SQLite
//	TASKGATE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//		go test -v -run MultiProcess ./internal/systemtest/
//
// The package has no non-test code: it is not for import.
//
// It stands outside the data path (request → auth → environment →
// dispatcher → scheduler → node agent → store → callbacks) and drives the
// whole of it, as a client and as the operator who kills processes. Its
// tests may import anything; nothing may import it.
package systemtest
