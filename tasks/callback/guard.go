package callback

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// ErrForbiddenAddress is wrapped by every refusal of the SSRF guard.
var ErrForbiddenAddress = errors.New("callback: destination address not allowed")

// ForbiddenAddressError says which address the guard refused and why.
type ForbiddenAddressError struct {
	Addr   netip.Addr
	Reason string // the range it falls in, e.g. "loopback"
}

func (e *ForbiddenAddressError) Error() string {
	return fmt.Sprintf("callback: destination %s not allowed (%s)", e.Addr, e.Reason)
}

// Unwrap lets errors.Is match ErrForbiddenAddress.
func (e *ForbiddenAddressError) Unwrap() error { return ErrForbiddenAddress }

// blockedRange is one refused prefix and the name a refusal reports.
type blockedRange struct {
	prefix netip.Prefix
	reason string
}

// blockedV4 lists IPv4 ranges a callback must never reach: everything that
// is not globally routable unicast (RFC 6890 special-purpose registry), so
// that a caller cannot use taskgate to probe its internal network, its
// loopback services or the cloud metadata endpoint.
var blockedV4 = mustRanges(
	"0.0.0.0/8", "this network",
	"10.0.0.0/8", "private",
	"100.64.0.0/10", "carrier-grade NAT",
	"127.0.0.0/8", "loopback",
	"169.254.0.0/16", "link-local (cloud metadata)",
	"172.16.0.0/12", "private",
	"192.0.0.0/24", "IETF protocol assignments",
	"192.0.2.0/24", "documentation",
	"192.88.99.0/24", "6to4 relay anycast",
	"192.168.0.0/16", "private",
	"198.18.0.0/15", "benchmarking",
	"198.51.100.0/24", "documentation",
	"203.0.113.0/24", "documentation",
	"224.0.0.0/4", "multicast",
	"255.255.255.255/32", "broadcast", // before 240/4, which holds it
	"240.0.0.0/4", "reserved",
)

// blockedV6 lists IPv6 ranges refused outright. IPv6 forms that embed an
// IPv4 address (mapped, NAT64, 6to4) are unwrapped and the IPv4 address is
// judged instead: see embeddedV4.
var blockedV6 = mustRanges(
	"::/128", "unspecified",
	"::1/128", "loopback",
	"::/96", "IPv4-compatible (deprecated)",
	"::ffff:0:0:0/96", "IPv4-translated",
	"64:ff9b:1::/48", "local-use NAT64",
	"100::/64", "discard-only",
	"2001::/23", "IETF protocol assignments (Teredo, ORCHID, benchmarking)",
	"2001:db8::/32", "documentation",
	"3fff::/20", "documentation",
	"5f00::/16", "segment routing",
	"fc00::/7", "unique local (private)",
	"fe80::/10", "link-local",
	"fec0::/10", "site-local (deprecated)",
	"ff00::/8", "multicast",
)

var (
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour      = netip.MustParsePrefix("2002::/16")
	// globalUnicastV6 is the only IPv6 space IANA allocates for global
	// unicast today.
	globalUnicastV6 = netip.MustParsePrefix("2000::/3")
)

func mustRanges(pairs ...string) []blockedRange {
	out := make([]blockedRange, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, blockedRange{netip.MustParsePrefix(pairs[i]), pairs[i+1]})
	}
	return out
}

// CheckAddr returns a *ForbiddenAddressError when ip is not a globally
// routable unicast address: loopback, private, link-local (169.254.169.254
// metadata included), CGNAT, unspecified, multicast, broadcast, reserved,
// documentation ranges, and the IPv6 forms of all of them, including IPv4
// addresses embedded in IPv4-mapped (::ffff:a.b.c.d), NAT64 (64:ff9b::/96)
// and 6to4 (2002::/16) addresses.
func CheckAddr(ip netip.Addr) error {
	ip = ip.WithZone("")
	if !ip.IsValid() {
		return &ForbiddenAddressError{Addr: ip, Reason: "invalid"}
	}
	if ip.Is4In6() {
		return checkV4(ip.Unmap(), ip, "IPv4-mapped ")
	}
	if ip.Is4() {
		return checkV4(ip, ip, "")
	}
	if v4, kind, ok := embeddedV4(ip); ok {
		return checkV4(v4, ip, kind)
	}
	for _, r := range blockedV6 {
		if r.prefix.Contains(ip) {
			return &ForbiddenAddressError{Addr: ip, Reason: r.reason}
		}
	}
	// Only 2000::/3 is allocated global unicast; anything else is
	// unassigned today and refused rather than guessed about.
	if !globalUnicastV6.Contains(ip) {
		return &ForbiddenAddressError{Addr: ip, Reason: "not global unicast"}
	}
	return nil
}

// embeddedV4 extracts the IPv4 address that a NAT64 or 6to4 address routes
// to, so that 64:ff9b::7f00:1 is judged as 127.0.0.1.
func embeddedV4(ip netip.Addr) (netip.Addr, string, bool) {
	b := ip.As16()
	switch {
	case nat64WellKnown.Contains(ip):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), "NAT64 ", true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), "6to4 ", true
	}
	return netip.Addr{}, "", false
}

func checkV4(v4, orig netip.Addr, kind string) error {
	for _, r := range blockedV4 {
		if r.prefix.Contains(v4) {
			return &ForbiddenAddressError{Addr: orig, Reason: kind + r.reason}
		}
	}
	return nil
}

// guardControl is a net.Dialer Control function: it runs after name
// resolution, on the very address about to be connected, for every address
// the dialer tries. Checking here rather than when validating the URL is
// what defeats DNS rebinding (a name that resolves to a public address at
// validation and to 127.0.0.1 at connection).
func guardControl(network, address string, _ syscall.RawConn) error {
	switch network {
	case "tcp4", "tcp6":
	default:
		return fmt.Errorf("%w: network %q", ErrForbiddenAddress, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable address %q", ErrForbiddenAddress, address)
	}
	return CheckAddr(ap.Addr())
}

// newDialer returns the dialer of the callback client: guarded unless
// allowPrivate.
func newDialer(allowPrivate bool, resolver *net.Resolver) *net.Dialer {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: keepAlive, Resolver: resolver}
	if !allowPrivate {
		d.Control = guardControl
	}
	return d
}
