package telemetry

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks/store/postgres/pgtest"
)

// poolValue is the value of family name's series for pool, -1 when absent.
func poolValue(t *testing.T, reg *prometheus.Registry, name, pool string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetLabel()[0].GetValue() == pool {
				return m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

// TestPostgresPoolStats reads pgxpool's counts through the collector
// while the test holds a connection and after it gives it back.
func TestPostgresPoolStats(t *testing.T) {
	t.Parallel()
	s := pgtest.Open(t, "test", "the PostgreSQL tests", 3)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	require.NoError(t, RegisterPools(reg, s))
	require.NoError(t, RegisterPools(reg, s), "a second registration keeps the first")

	conn, err := s.Pool().Acquire(ctx)
	require.NoError(t, err)
	require.Equal(t, 3.0, poolValue(t, reg, "taskgate_store_pool_max_connections", "main"))
	require.Equal(t, 1.0, poolValue(t, reg, "taskgate_store_pool_in_use_connections", "main"))
	open := poolValue(t, reg, "taskgate_store_pool_open_connections", "main")
	require.GreaterOrEqual(t, open, 1.0)
	require.Equal(t, open-1, poolValue(t, reg, "taskgate_store_pool_idle_connections", "main"))
	require.GreaterOrEqual(t, poolValue(t, reg, "taskgate_store_pool_waits_total", "main"), 0.0)
	require.GreaterOrEqual(t, poolValue(t, reg, "taskgate_store_pool_wait_seconds_total", "main"), 0.0)
	conn.Release()
	require.Equal(t, 0.0, poolValue(t, reg, "taskgate_store_pool_in_use_connections", "main"))
	require.Equal(t, open, poolValue(t, reg, "taskgate_store_pool_idle_connections", "main"))
}
