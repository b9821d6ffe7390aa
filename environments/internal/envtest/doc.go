// Package envtest is the scaffolding the tests of environments and of its
// kinds (webhook, queue, server) share: an environment served as the App
// serves it, a real App over a real SQLite file, the bearer tokens both
// accept, and plain requests with their replies.
//
// It sits beside the data path, not on it: only _test.go files may import
// it (depguard's no-demo-in-library rule enforces this), and being internal
// it is not part of taskgate's API.
package envtest
