package sqlite

import (
	"errors"
	"fmt"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/taskgate/taskgate/tasks/store"
)

// classify names SQLite's own failures (sqlstore.Dialect.Classify): a full
// disk, and the errors a later try may not meet (a lock held past
// busy_timeout, an I/O error, no memory, a file that cannot be opened or
// written). Constraint violations, corruption and SQL errors are not
// named: trying again changes nothing.
func classify(err error) error {
	var se *msqlite.Error
	if !errors.As(err, &se) {
		return nil
	}
	switch se.Code() & 0xff { // the primary code of an extended one
	case sqlite3.SQLITE_FULL:
		return store.ErrDiskFull
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_IOERR,
		sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PROTOCOL:
		return store.ErrUnavailable
	}
	return nil
}

// markErr wraps err with what classify names, for the statements that do
// not pass through sqlstore (the lease's takeover).
func markErr(err error) error {
	if kind := classify(err); kind != nil {
		return fmt.Errorf("%w: %w", kind, err)
	}
	return err
}
