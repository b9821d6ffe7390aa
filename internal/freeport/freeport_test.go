package freeport

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestPortIsFreeAndOutsideTheEphemeralRange(t *testing.T) {
	t.Parallel()
	for range 20 {
		p := Port(t)
		if p < Min || p >= Max {
			t.Fatalf("port %d outside %d-%d", p, Min, Max-1)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		_ = l.Close()
	}
}

// TestPortsAreReservedUntilTheTestEnds draws many ports in one test: none
// may come twice while the test holds them, though each was free when
// drawn; after the test, their reservations are gone.
func TestPortsAreReservedUntilTheTestEnds(t *testing.T) {
	t.Parallel()
	seen := map[int]bool{}
	t.Run("draw", func(t *testing.T) {
		for range 500 {
			p := Port(t)
			if seen[p] {
				t.Fatalf("port %d drawn twice while reserved", p)
			}
			seen[p] = true
		}
	})
	dir := filepath.Join(os.TempDir(), "taskgate-freeport")
	for p := range seen {
		if _, err := os.Stat(filepath.Join(dir, strconv.Itoa(p))); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("port %d still reserved after its test: %v", p, err)
		}
	}
}

// TestStaleReservationIsTakenOver: a reservation left by a killed test
// process blocks its port only until it is stale.
func TestStaleReservationIsTakenOver(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "21000")
	if !reserve(file) {
		t.Fatal("a fresh file was not reserved")
	}
	if reserve(file) {
		t.Fatal("a held reservation was taken")
	}
	old := time.Now().Add(-2 * staleAfter)
	if err := os.Chtimes(file, old, old); err != nil {
		t.Fatal(err)
	}
	if !reserve(file) {
		t.Fatal("a stale reservation was not taken over")
	}
}
