package sqlite

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/taskgate/taskgate/tasks/store"
)

// fileLeases backs the scheduler lease with an OS file lock beside the
// database. A lease row alone cannot tell a live holder from a process that
// was killed: a restarted single-process server would wait out its dead
// predecessor's TTL before scheduling anything. The OS drops a file lock
// (flock on Unix, LockFileEx on Windows: lockFile) the moment its process
// dies, so holding it proves every other holder recorded in the table is
// gone, and the row is taken over at once. Within one process (several
// dispatchers on one Store) the row and its TTL still decide, as in
// PostgreSQL.
type fileLeases struct {
	mu    sync.Mutex
	base  string
	files map[string]*os.File
	// closed: the Store was closed; a scheduler still trying on it must
	// not take the file back from the Store opened after it.
	closed bool
}

// lock takes the lease file of name for this Store. fresh reports that it
// was not held before, so rows of earlier holders are stale.
func (l *fileLeases) lock(name string) (held, fresh bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false, false, store.ErrClosed
	}
	if _, ok := l.files[name]; ok {
		return true, false, nil
	}
	f, err := os.OpenFile(l.base+".lease-"+name, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return false, false, fmt.Errorf("sqlite: lease file: %w", err)
	}
	locked, err := lockFile(f)
	if err != nil || !locked {
		f.Close()
		if err != nil {
			return false, false, fmt.Errorf("sqlite: lock lease file: %w", err)
		}
		return false, false, nil // another live process holds it
	}
	l.files[name] = f
	return true, true, nil
}

func (l *fileLeases) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for name, f := range l.files {
		f.Close() // closing the descriptor releases the flock
		delete(l.files, name)
	}
}

// AcquireLease implements store.Store: the lease file first, then the row.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	held, fresh, err := s.leases.lock(name)
	if err != nil || !held {
		return false, err
	}
	if fresh {
		// Whoever the row names is dead (or was this Store before a
		// restart of its lock): forget it.
		if _, err := s.db.w.ExecContext(ctx, `DELETE FROM leases WHERE name = ?`, name); err != nil {
			return false, fmt.Errorf("sqlite: take over lease: %w", markErr(err))
		}
	}
	return s.Store.AcquireLease(ctx, name, holder, ttl)
}

// Close releases the lease files, then the database.
func (s *Store) Close() error {
	s.leases.close()
	return s.Store.Close()
}
