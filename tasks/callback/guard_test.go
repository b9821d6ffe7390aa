package callback_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/taskgate/taskgate/internal/fakedns"
	"github.com/taskgate/taskgate/tasks/callback"
)

// checkAddrCases is the SSRF table: every forbidden form, and public
// addresses that must pass.
var checkAddrCases = []struct {
	addr   string
	reason string // empty: allowed
}{
	// IPv4 forbidden ranges.
	{"127.0.0.1", "loopback"},
	{"127.255.255.254", "loopback"},
	{"10.0.0.1", "private"},
	{"172.16.0.1", "private"},
	{"172.31.255.255", "private"},
	{"192.168.1.1", "private"},
	{"169.254.169.254", "link-local (cloud metadata)"},
	{"169.254.0.1", "link-local"},
	{"100.64.0.1", "carrier-grade NAT"},
	{"100.127.255.255", "carrier-grade NAT"},
	{"0.0.0.0", "this network"},
	{"0.1.2.3", "this network"},
	{"224.0.0.1", "multicast"},
	{"239.255.255.250", "multicast"},
	{"255.255.255.255", "broadcast"},
	{"240.0.0.1", "reserved"},
	{"192.0.2.10", "documentation"},
	{"198.18.0.1", "benchmarking"},
	// IPv6 forms.
	{"::1", "loopback"},
	{"::", "unspecified"},
	{"::ffff:127.0.0.1", "IPv4-mapped loopback"},
	{"::ffff:169.254.169.254", "IPv4-mapped link-local (cloud metadata)"},
	{"::ffff:10.0.0.1", "IPv4-mapped private"},
	{"::127.0.0.1", "IPv4-compatible"},
	{"64:ff9b::7f00:1", "NAT64 loopback"},
	{"64:ff9b::a9fe:a9fe", "NAT64 link-local"},
	{"64:ff9b::c0a8:101", "NAT64 private"},
	{"64:ff9b:1::1", "local-use NAT64"},
	{"2002:7f00:1::1", "6to4 loopback"},
	{"2002:a00:1::1", "6to4 private"},
	{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"},
	{"2001:db8::1", "documentation"},
	{"fc00::1", "unique local"},
	{"fd12:3456:789a::1", "unique local"},
	{"fe80::1", "link-local"},
	{"fe80::1%eth0", "link-local"},
	{"fec0::1", "site-local"},
	{"ff02::1", "multicast"},
	{"100::1", "discard-only"},
	{"4000::1", "not global unicast"},
	// Public addresses pass.
	{"8.8.8.8", ""},
	{"1.1.1.1", ""},
	{"172.32.0.1", ""},
	{"100.128.0.1", ""},
	{"169.255.0.1", ""},
	{"::ffff:8.8.8.8", ""},
	{"64:ff9b::808:808", ""},
	{"2002:808:808::1", ""},
	{"2606:4700:4700::1111", ""},
}

func TestCheckAddr(t *testing.T) {
	t.Parallel()
	for _, tc := range checkAddrCases {
		t.Run(tc.addr, func(t *testing.T) {
			t.Parallel()
			err := callback.CheckAddr(netip.MustParseAddr(tc.addr))
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("CheckAddr(%s) = %v, want allowed", tc.addr, err)
				}
				return
			}
			var fe *callback.ForbiddenAddressError
			if !errors.As(err, &fe) || !errors.Is(err, callback.ErrForbiddenAddress) {
				t.Fatalf("CheckAddr(%s) = %v, want *ForbiddenAddressError", tc.addr, err)
			}
			if !strings.Contains(fe.Reason, tc.reason) {
				t.Fatalf("CheckAddr(%s) reason %q, want it to mention %q", tc.addr, fe.Reason, tc.reason)
			}
		})
	}
}

// errWouldConnect is what the test's last Control step returns: reaching it
// means the guard let the address through.
var errWouldConnect = errors.New("test: guard let the address through to connect()")

// Every forbidden address form of the table is dialed through the real
// dialer. Control runs after the socket is made and before connect(), so the
// test adds a last Control step that stops there: a guard regression fails
// the test without a packet leaving the machine.
func TestGuardedDialerRefusesEveryForbiddenForm(t *testing.T) {
	t.Parallel()
	for _, tc := range checkAddrCases {
		t.Run(tc.addr, func(t *testing.T) {
			t.Parallel()
			if strings.Contains(tc.addr, "%") {
				t.Skip("zoned addresses need a real interface name")
			}
			d := callback.GuardedDialer()
			guard := d.Control
			d.Control = func(network, address string, c syscall.RawConn) error {
				if err := guard(network, address, c); err != nil {
					return err
				}
				return errWouldConnect
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(tc.addr, "80"))
			if conn != nil {
				conn.Close()
			}
			if tc.reason == "" {
				if !errors.Is(err, errWouldConnect) {
					t.Fatalf("dial %s: %v, want the guard to let it through", tc.addr, err)
				}
				return
			}
			if errors.Is(err, errWouldConnect) || !errors.Is(err, callback.ErrForbiddenAddress) {
				t.Fatalf("dial %s: %v, want ErrForbiddenAddress", tc.addr, err)
			}
		})
	}
}

// listenLoopback starts a receiver that counts requests, on the loopback
// address of the given family. It skips when the family is unavailable.
func listenLoopback(t *testing.T, network, addr string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("no %s loopback here: %v", network, err)
	}
	hits := new(atomic.Int32)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, hits
}

// The SSRF table on the wire: each forbidden address form is dialed for
// real. The guard must refuse it before connecting, and AllowPrivate must
// let the same request through to the live receiver.
func TestClientGuardRefusesLoopbackForms(t *testing.T) {
	t.Parallel()
	v4, v4hits := listenLoopback(t, "tcp4", "127.0.0.1:0")
	port := v4.Listener.Addr().(*net.TCPAddr).Port
	resolver := fakedns.Resolver(t, netip.MustParseAddr("127.0.0.1"))

	type target struct {
		name, url string
		hits      *atomic.Int32
	}
	targets := []target{
		{"ipv4 loopback", "http://127.0.0.1:" + strconv.Itoa(port) + "/hook", v4hits},
		{"ipv4 loopback other", "http://127.1.2.3:" + strconv.Itoa(port) + "/hook", v4hits},
		{"unspecified 0.0.0.0", "http://0.0.0.0:" + strconv.Itoa(port) + "/hook", v4hits},
		{"name resolving to loopback", "http://receiver.test:" + strconv.Itoa(port) + "/hook", nil},
	}
	if v6, v6hits := tryListen("tcp6", "[::1]:0"); v6 != nil {
		t.Cleanup(v6.Close)
		p6 := strconv.Itoa(v6.Listener.Addr().(*net.TCPAddr).Port)
		targets = append(targets,
			target{"ipv6 loopback", "http://[::1]:" + p6 + "/hook", v6hits},
			target{"ipv6 unspecified", "http://[::]:" + p6 + "/hook", v6hits},
		)
	}
	// IPv4-mapped ::ffff:127.0.0.1 is dialed over IPv6 sockets; the kernel
	// hands it to the IPv4 listener when dual-stack is on.
	targets = append(targets, target{"ipv4-mapped loopback", "http://[::ffff:127.0.0.1]:" + strconv.Itoa(port) + "/hook", v4hits})

	for _, tc := range targets {
		t.Run(tc.name, func(t *testing.T) {
			guarded, err := callback.NewClient(callback.ClientConfig{Resolver: resolver, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			before := 0
			if tc.hits != nil {
				before = int(tc.hits.Load())
			}
			_, err = guarded.Post(tc.url, "application/json", strings.NewReader("{}"))
			if !errors.Is(err, callback.ErrForbiddenAddress) {
				t.Fatalf("guarded POST %s: err = %v, want ErrForbiddenAddress", tc.url, err)
			}
			if tc.hits != nil && int(tc.hits.Load()) != before {
				t.Fatalf("guarded POST reached the receiver")
			}
		})
	}

	// With the guard lifted the same loopback receiver is reachable: the
	// refusals above were the guard's, not a dead port.
	open, err := callback.NewClient(callback.ClientConfig{Resolver: resolver, AllowPrivate: true, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"http://127.0.0.1:" + strconv.Itoa(port) + "/hook", "http://receiver.test:" + strconv.Itoa(port) + "/hook"} {
		resp, err := open.Post(u, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatalf("AllowPrivate POST %s: %v", u, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("AllowPrivate POST %s: status %d", u, resp.StatusCode)
		}
	}
}

func tryListen(network, addr string) (*httptest.Server, *atomic.Int32) {
	l, err := net.Listen(network, addr)
	if err != nil {
		return nil, nil
	}
	hits := new(atomic.Int32)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	return srv, hits
}

// A name that resolves to 127.0.0.1 through a DNS server of the attacker's
// choosing (here: one on loopback that answers 127.0.0.1 to everything) is
// refused: the guard judges the address dialed, not the name.
func TestClientGuardRefusesNameResolvingToLoopback(t *testing.T) {
	t.Parallel()
	srv, hits := listenLoopback(t, "tcp4", "127.0.0.1:0")
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	resolver := fakedns.Resolver(t, netip.MustParseAddr("127.0.0.1"))
	url := "http://rebind.attacker.example:" + port + "/hook"

	guarded, err := callback.NewClient(callback.ClientConfig{Resolver: resolver, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = guarded.Post(url, "application/json", strings.NewReader("{}"))
	var fe *callback.ForbiddenAddressError
	if !errors.As(err, &fe) || fe.Addr != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("guarded POST to a name resolving to 127.0.0.1: err = %v, want ForbiddenAddressError for 127.0.0.1", err)
	}
	if hits.Load() != 0 {
		t.Fatal("the guarded client reached the receiver")
	}

	open, err := callback.NewClient(callback.ClientConfig{Resolver: resolver, AllowPrivate: true, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := open.Post(url, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("AllowPrivate POST: %v", err)
	}
	resp.Body.Close()
	if hits.Load() != 1 {
		t.Fatalf("receiver hits = %d, want 1", hits.Load())
	}
}
