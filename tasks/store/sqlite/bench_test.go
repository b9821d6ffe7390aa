package sqlite_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/sqlite"
)

// BenchmarkCreateRuns measures a group commit of n runs (one transaction,
// one fsync) per run, at the batch sizes a loaded submit path produces:
// ns/op is per run. Batch 1 is the no-grouping baseline.
func BenchmarkCreateRuns(b *testing.B) {
	for _, n := range []int{1, 15, 64} {
		b.Run(fmt.Sprintf("batch-%d", n), func(b *testing.B) {
			ctx := context.Background()
			s, err := sqlite.OpenDir(ctx, b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			seq := 0
			batch := make([]store.NewRun, n)
			b.ResetTimer()
			for i := 0; i < b.N; i += n {
				for j := range batch {
					seq++
					batch[j] = store.NewRun{
						Name: fmt.Sprintf("r%012d", seq), Project: "demo", Domain: "development", Task: "echo", Version: "v1",
						Caller: store.Caller{Subject: "bencher", Groups: []string{"admins"}},
						Inputs: []byte(`{"message":"hi"}`), CreatedAt: time.Now(),
					}
				}
				if _, err := s.CreateRuns(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
		})
	}
}
