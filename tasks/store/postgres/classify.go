package postgres

import (
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/taskgate/taskgate/tasks/store"
)

// classify names PostgreSQL's own failures (sqlstore.Dialect.Classify) by
// SQLSTATE: disk_full (53100), and the errors a later try may not meet: a
// lost or refused connection, a server short of resources, shutting down
// or become a standby, an I/O error, a conflict between transactions.
// Data and SQL errors are not named: trying again changes nothing.
func classify(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if pe.Code == "53100" {
			return store.ErrDiskFull
		}
		for _, c := range transientStates {
			if strings.HasPrefix(pe.Code, c) {
				return store.ErrUnavailable
			}
		}
		return nil
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), pgconn.SafeToRetry(err):
		return store.ErrUnavailable
	}
	return nil
}

// transientStates are the SQLSTATEs, or their classes, that classify
// names ErrUnavailable.
var transientStates = []string{
	"08",    // connection exception
	"53",    // insufficient resources (53100 is the disk)
	"57P",   // admin or crash shutdown, cannot connect now
	"58030", // io_error
	"25006", // read_only_sql_transaction: a standby after a failover
	"40001", // serialization_failure
	"40P01", // deadlock_detected
	"55P03", // lock_not_available
}
