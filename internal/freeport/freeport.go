package freeport

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Range is the half-open range ports are drawn from.
const (
	Min = 20000
	Max = 32000
)

// staleAfter is the age past which a reservation is taken to be left by a
// test process that was killed before its cleanup: no test runs this long.
const staleAfter = 30 * time.Minute

// Port returns a loopback TCP port that was free when it returned, and that
// no other test using this package gets until t ends.
func Port(t testing.TB) int {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "taskgate-freeport")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("freeport: %v", err)
	}
	for range 100 {
		port := Min + rand.IntN(Max-Min)
		file := filepath.Join(dir, strconv.Itoa(port))
		if !reserve(file) {
			continue // another test holds it: draw again
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			_ = os.Remove(file)
			continue // taken: draw again
		}
		_ = l.Close()
		t.Cleanup(func() { _ = os.Remove(file) })
		return port
	}
	t.Fatalf("freeport: no free port in %d-%d after 100 draws", Min, Max-1)
	return 0
}

// reserve creates file, or takes it over when it is stale; it reports
// whether the caller now holds it.
func reserve(file string) bool {
	for range 2 {
		f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			_ = f.Close()
			return true
		}
		if !errors.Is(err, fs.ErrExist) {
			return false
		}
		fi, err := os.Stat(file)
		if err != nil || time.Since(fi.ModTime()) < staleAfter {
			return false
		}
		_ = os.Remove(file) // left by a killed test process
	}
	return false
}

// Addr is Port as "127.0.0.1:port".
func Addr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(Port(t))
}
