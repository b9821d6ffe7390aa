package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/internal/sqlstore"
)

// TestOutboxPlans checks the plans of the webhook outbox's claim and
// record on 20,000 pending deliveries, before the table has statistics (a
// burst that autovacuum has not analyzed yet) and after, each as a custom
// and as a generic plan, with the transaction's planner settings
// (Dialect.OutboxPlan): the claim walks deliveries_due in order and stops
// at its limit, checking each delivery's run by deliveries_run; a record
// probes the primary key once per delivery. Never a scan, a sort or a hash
// of every pending delivery: those made a claim cost what the backlog
// holds (issue 19).
func TestOutboxPlans(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, conn := planStore(t, "outboxplan", "the PostgreSQL plan tests")
	const n = 20000
	_, err := conn.Exec(ctx, fmt.Sprintf(`INSERT INTO deliveries (id, run, url, event, payload, state, next_attempt_at, created_at, seq)
		SELECT 'msg_' || i, 'run-' || i, 'https://example.com/hook', 'completed', '{}', 'pending', i, i, 1
		FROM generate_series(1, %d) AS i`, n))
	require.NoError(t, err)

	now := time.Unix(0, n)
	claim, claimArgs := sqlstore.ClaimDeliveriesQuery(s.Store, now, 200)
	recs := make([]store.DeliveryRecord, 32)
	for i := range recs {
		recs[i] = store.DeliveryRecord{ID: fmt.Sprintf("msg_%d", i+1), Attempt: store.DeliveryAttempt{At: now, StatusCode: 204, Done: true}}
	}
	record, recordArgs := sqlstore.RecordDeliveriesQuery(s.Store, recs)
	stmt := 0
	for _, stats := range []string{"no statistics", "analyzed"} {
		if stats == "analyzed" {
			_, err = conn.Exec(ctx, "VACUUM ANALYZE deliveries")
			require.NoError(t, err)
		}
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			t.Run(stats+"/"+mode, func(t *testing.T) {
				tx, err := conn.Begin(ctx)
				require.NoError(t, err)
				defer func() { _ = tx.Rollback(context.Background()) }()
				_, err = tx.Exec(ctx, "SET LOCAL plan_cache_mode = "+mode)
				require.NoError(t, err)
				_, err = tx.Exec(ctx, sqlstore.OutboxPlanQuery(s.Store))
				require.NoError(t, err)
				plan := func(q string, args []any) string {
					stmt++
					name := fmt.Sprintf("outbox_%d", stmt)
					_, err := tx.Exec(ctx, "PREPARE "+name+" AS "+q)
					require.NoError(t, err)
					return explain(t, tx.Conn(), "EXPLAIN EXECUTE "+name+"("+literals(args)+")")
				}
				p := plan(claim, claimArgs)
				for _, bad := range []string{"Seq Scan", "Sort", "Hash Join", "Hash Anti Join", "Hash Semi Join", "Bitmap", "Materialize"} {
					require.NotContains(t, p, bad, "claim: %s", p)
				}
				require.Contains(t, p, "Index Scan using deliveries_due on deliveries d", "claim: %s", p)
				require.Contains(t, p, "Index Scan using deliveries_run on deliveries p", "claim: %s", p)
				p = plan(record, recordArgs)
				for _, bad := range []string{"Seq Scan", "Hash Join", "Hash Semi Join", "Bitmap", "deliveries_due", "Materialize"} {
					require.NotContains(t, p, bad, "record: %s", p)
				}
				require.Contains(t, p, "Index Scan using deliveries_pkey", "record: %s", p)
			})
		}
	}
}
