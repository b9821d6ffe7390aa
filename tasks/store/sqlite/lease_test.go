package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/taskgate/taskgate/tasks/store/sqlite"
)

// TestLeaseOfADeadHolderIsFreeAtOnce: a holder that goes away without
// releasing (as a killed process does) leaves the lease to the next process
// at once, not after its TTL; while it lives, nobody else gets it.
func TestLeaseOfADeadHolderIsFreeAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db.sqlite")
	first, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	second, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()

	if ok, err := first.AcquireLease(ctx, "scheduler", "first", time.Hour); err != nil || !ok {
		t.Fatalf("first acquire: %v %v", ok, err)
	}
	if ok, err := second.AcquireLease(ctx, "scheduler", "second", time.Hour); err != nil || ok {
		t.Fatalf("second acquired a lease held by a live holder: %v %v", ok, err)
	}
	first.Close() // dies without ReleaseLease; its hour-long TTL is far away
	if ok, err := second.AcquireLease(ctx, "scheduler", "second", time.Hour); err != nil || !ok {
		t.Fatalf("second could not take over a dead holder's lease: %v %v", ok, err)
	}
}
