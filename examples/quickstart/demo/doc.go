// Package demo holds the quickstart's tasks and webhook environment, so the
// quickstart binary, the committed OpenAPI documents and the tests all serve
// exactly the same thing. It is the whole data path (request → auth →
// environment → dispatcher → scheduler → node agent → store → callbacks) in
// one small program's worth of definitions: an environment and the tasks it
// submits. It may import any taskgate package; library code must not import
// it (make lint), only examples, the OpenAPI generator and the benchmarks.
package demo
