// Package e2e holds browser tests of the quickstart, built with the e2e tag
// (`make e2e`): they start the real binary and drive Debian's Chromium
// headless through the DevTools protocol.
//
// It stands outside the data path (request → auth → environment →
// dispatcher → scheduler → node agent → store → callbacks) and looks at its
// first step, the environment's /docs, as a browser does. It has no non-test
// code; nothing may import it.
package e2e
