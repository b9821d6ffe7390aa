// Package fakedns is a DNS server on loopback that answers every A question
// with one address: the boundary fake through which tests resolve host
// names, so that no test asks the system's resolver (/etc/hosts, the
// network's DNS) about a name. It also plays an attacker's name server
// that points a public-looking name at a private address.
//
// It stands beside the data path (request → auth → environment →
// dispatcher → scheduler → node agent → store → callbacks) as a test fake at
// the network's edge: the tests of the callbacks' SSRF guard and of
// middleware resolve host names through it. It imports only the standard library; non-test code
// must not import it.
package fakedns
