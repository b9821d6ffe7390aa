// Package freeport finds loopback ports for tests that start a server in
// another process, which must bind a port the test chose beforehand.
//
// The port is drawn below the kernel's ephemeral range (Linux's default
// is 32768-60999). A port the kernel handed out for ":0" and that was then
// closed can be handed out again, to another test's listener or to a
// client socket's source port, before the child process binds it; outside
// that range only an explicit bind can take it.
//
// Between the draw and the child's bind, another test could draw the same
// port: a test in this process or in another package's test binary, which
// `go test ./...` runs at the same time. So each port drawn is also
// reserved, until the test ends, by a file in a directory every test
// process shares; a port whose file exists is drawn again.
//
// It stands beside the data path (request → auth → environment →
// dispatcher → scheduler → node agent → store → callbacks) as a test helper
// for the tests that start taskgate as a process. It imports only the
// standard library; non-test code must not import it.
package freeport
