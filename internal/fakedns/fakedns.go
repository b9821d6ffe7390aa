package fakedns

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
)

// Resolver returns a resolver that asks a server of Start's alone, so
// every name resolves to ip. The server stops when t ends.
func Resolver(t testing.TB, ip netip.Addr) *net.Resolver {
	t.Helper()
	addr := Start(t, ip)
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", addr)
		},
	}
}

// Start serves UDP DNS on loopback until t ends, answering every A
// question with ip and every other question with no records, and returns
// its address.
func Start(t testing.TB, ip netip.Addr) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := answer(buf[:n], ip); resp != nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

// answer builds the reply to a one-question query (RFC 1035 4.1).
func answer(q []byte, ip netip.Addr) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:6]) != 1 {
		return nil
	}
	// Walk the question name to find QTYPE.
	i := 12
	for i < len(q) && q[i] != 0 {
		i += int(q[i]) + 1
	}
	if i+5 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i+1 : i+3])
	question := q[12 : i+5]

	resp := make([]byte, 12, 64)
	copy(resp, q[:2])                            // id
	binary.BigEndian.PutUint16(resp[2:], 0x8180) // response, recursion available, no error
	binary.BigEndian.PutUint16(resp[4:], 1)      // qdcount
	resp = append(resp, question...)
	if qtype == 1 { // A
		binary.BigEndian.PutUint16(resp[6:], 1) // ancount
		a4 := ip.As4()
		resp = append(resp,
			0xc0, 0x0c, // name: pointer to the question
			0, 1, 0, 1, // type A, class IN
			0, 0, 0, 30, // TTL
			0, 4, a4[0], a4[1], a4[2], a4[3])
	}
	return resp
}
