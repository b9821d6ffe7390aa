package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestPortIsFreeAndOutsideTheEphemeralRange(t *testing.T) {
	t.Parallel()
	for range 20 {
		p := Port(t)
		if p < Min || p >= Max {
			t.Fatalf("port %d outside %d-%d", p, Min, Max-1)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		_ = l.Close()
	}
}
