package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks/store"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	pg := func(code string) error { return fmt.Errorf("insert runs: %w", &pgconn.PgError{Code: code}) }
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"disk full", pg("53100"), store.ErrDiskFull},
		{"out of memory", pg("53200"), store.ErrUnavailable},
		{"too many connections", pg("53300"), store.ErrUnavailable},
		{"connection failure", pg("08006"), store.ErrUnavailable},
		{"admin shutdown", pg("57P01"), store.ErrUnavailable},
		{"cannot connect now", pg("57P03"), store.ErrUnavailable},
		{"read-only standby", pg("25006"), store.ErrUnavailable},
		{"serialization failure", pg("40001"), store.ErrUnavailable},
		{"deadlock", pg("40P01"), store.ErrUnavailable},
		{"io error", pg("58030"), store.ErrUnavailable},
		{"unique violation", pg("23505"), nil},
		{"bad byte sequence", pg("22021"), nil},
		{"syntax error", pg("42601"), nil},
		{"query cancelled", pg("57014"), nil},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, store.ErrUnavailable},
		{"lost connection", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), store.ErrUnavailable},
		{"closed conn", fmt.Errorf("x: %w", pgconn.ErrConnClosed), store.ErrUnavailable},
		{"plain error", errors.New("json: cannot unmarshal"), nil},
		{"context", context.Canceled, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, classify(tc.err))
		})
	}
}
