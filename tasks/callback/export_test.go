package callback

import "net"

// GuardedDialer exposes the production dialer (guard on) to the external
// tests.
func GuardedDialer() *net.Dialer { return newDialer(false, nil) }
