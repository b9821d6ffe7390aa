package tmpfs

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// Mount mounts a tmpfs of size bytes on a new temporary directory and
// returns the directory; it is unmounted when t ends, after the cleanups
// registered later (so a store opened on it is closed first). t is skipped
// where mounting is not permitted.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	dir := t.TempDir()
	err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size="+strconv.FormatInt(size, 10)+",mode=0700")
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		t.Skipf("tmpfs: mounting a filesystem needs root (CAP_SYS_ADMIN), which this test lacks: %v", err)
	case err != nil:
		t.Fatalf("tmpfs: mount on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		// Lazily: a file a failed test left open must not keep the mount.
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("tmpfs: unmount %s: %v", dir, err)
		}
	})
	return dir
}

// Free returns the bytes an unprivileged writer may still use in dir's
// filesystem.
func Free(t testing.TB, dir string) int64 {
	t.Helper()
	var s unix.Statfs_t
	if err := unix.Statfs(dir, &s); err != nil {
		t.Fatalf("tmpfs: statfs %s: %v", dir, err)
	}
	return int64(s.Bavail) * s.Bsize
}

// Fill writes a file in dir that takes all but about leave bytes of its
// filesystem's free space, and returns its path: removing it gives the
// space back.
func Fill(t testing.TB, dir string, leave int64) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatalf("tmpfs: %v", err)
	}
	defer f.Close()
	n := Free(t, dir) - leave
	if n <= 0 {
		return path
	}
	// Written, not truncated: tmpfs allocates the pages of a sparse file
	// only when they are written.
	buf := make([]byte, 64<<10)
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := f.Write(buf[:k]); err != nil {
			t.Fatalf("tmpfs: fill %s: %v", path, err)
		}
		n -= k
	}
	return path
}
