// Command quickstart is what `make run` starts: the demo tasks behind the
// prebuilt webhook environment, on embedded SQLite with a local node.
//
// Configuration comes from TASKGATE_* variables (see README.md). Without
// TASKGATE_AUTH_TOKENS or OIDC it generates a development token and prints a
// curl line to paste. TASKGATE_ROLE=api|agent|all (or -role) splits the API
// and scheduler from the node agent when several processes share PostgreSQL.
//
// It is the whole data path (request → auth → environment → dispatcher →
// scheduler → node agent → store → callbacks) in one program. As an example
// it uses only public packages and its demo, never internal/; library code
// must not import examples (make lint).
package main
