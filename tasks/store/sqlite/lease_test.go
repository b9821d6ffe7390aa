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

// TestClosedStoreLeavesTheLeaseFile: a scheduler that tries again on a
// Store closed under it must not take the lease file back, or the Store
// opened after it never leads.
func TestClosedStoreLeavesTheLeaseFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db.sqlite")
	old, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := old.AcquireLease(ctx, "scheduler", "old", time.Hour); err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	old.Close()
	if ok, err := old.AcquireLease(ctx, "scheduler", "old", time.Hour); err == nil || ok {
		t.Fatalf("a closed Store acquired the lease: %v %v", ok, err)
	}
	next, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	if ok, err := next.AcquireLease(ctx, "scheduler", "next", time.Hour); err != nil || !ok {
		t.Fatalf("the next Store could not take the lease a closed one let go: %v %v", ok, err)
	}
}
