package postgres_test

import (
	"testing"

	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/postgres"
	"github.com/taskgate/taskgate/tasks/store/postgres/pgtest"
	"github.com/taskgate/taskgate/tasks/store/storetest"
)

// Open returns a store in a fresh schema, dropped when t ends. It skips t
// when TASKGATE_TEST_POSTGRES_URL is unset.
func open(t *testing.T) *postgres.Store {
	t.Helper()
	return pgtest.Open(t, "test", "the PostgreSQL store tests", 4)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}
