// Package e2e holds browser tests of the quickstart, built with the e2e tag
// (`make e2e`): they start the real binary and drive Debian's Chromium
// headless through the DevTools protocol.
package e2e
