// Package tmpfs mounts small in-memory filesystems for tests that must fill
// a disk: a database that meets "no space left on device" for real, not
// through a fake. Mounting needs root (CAP_SYS_ADMIN) on Linux; elsewhere,
// or without the privilege, the test is skipped with a message that says so.
//
//	func TestFullDisk(t *testing.T) {
//		dir := tmpfs.Mount(t, 4<<20) // 4 MiB, unmounted when t ends
//		filler := tmpfs.Fill(t, dir, 64<<10) // leave 64 KiB free
//		// ... fill the rest, check the errors ...
//		require.NoError(t, os.Remove(filler)) // space comes back
//	}
//
// It stands beside the data path (request → auth → environment →
// dispatcher → scheduler → node agent → store → callbacks) as a test helper
// for the full-disk tests of the store and of the environments (507). It
// imports only the standard library and golang.org/x/sys; non-test code
// must not import it.
package tmpfs
