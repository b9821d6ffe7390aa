// Package freeport finds loopback ports for tests that start a server in
// another process, which must bind a port the test chose beforehand.
//
// The port is drawn below the kernel's ephemeral range (Linux's default
// is 32768-60999). A port the kernel handed out for ":0" and that was then
// closed can be handed out again, to another test's listener or to a
// client socket's source port, before the child process binds it; outside
// that range only an explicit bind can take it.
package freeport

import (
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
)

// Range is the half-open range ports are drawn from.
const (
	Min = 20000
	Max = 32000
)

// Port returns a loopback TCP port that was free when it returned.
func Port(t testing.TB) int {
	t.Helper()
	for range 100 {
		port := Min + rand.IntN(Max-Min)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue // taken: draw again
		}
		_ = l.Close()
		return port
	}
	t.Fatalf("freeport: no free port in %d-%d after 100 draws", Min, Max-1)
	return 0
}

// Addr returns "127.0.0.1:port" for a Port.
func Addr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(Port(t))
}
