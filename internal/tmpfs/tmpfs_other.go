//go:build !linux

package tmpfs

import "testing"

// Mount skips t: tmpfs mounts are Linux's.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	t.Skip("tmpfs: mounting a size-limited filesystem is only done on Linux")
	return ""
}

// Free is not reached: Mount skipped the test.
func Free(t testing.TB, dir string) int64 { t.Helper(); t.Skip("tmpfs: Linux only"); return 0 }

// Fill is not reached: Mount skipped the test.
func Fill(t testing.TB, dir string, leave int64) string {
	t.Helper()
	t.Skip("tmpfs: Linux only")
	return ""
}
