// Package benchstack serves what the throughput benchmarks measure: the
// quickstart's stack (demo tasks behind the prebuilt webhook environment,
// a static bearer token, a local node with one A100) and the bare chi
// baseline, each on a loopback port.
//
// It stands beside the data path (request → auth → environment →
// dispatcher → scheduler → node agent → store → callbacks) as a benchmark
// harness that serves the whole of it. It imports framework and the
// quickstart's demo; only tests and internal/benchwrk may import it (make
// lint).
package benchstack
