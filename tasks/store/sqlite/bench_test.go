package sqlite_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/sqlite"
)

// fillRuns fills batch with the quickstart's echo runs numbered after
// seq, and returns the last number.
func fillRuns(batch []store.NewRun, seq int) int {
	for j := range batch {
		seq++
		batch[j] = store.NewRun{
			Name: fmt.Sprintf("r%012d", seq), Project: "demo", Domain: "development", Task: "echo", Version: "v1",
			Caller: store.Caller{Subject: "bencher", Groups: []string{"admins"}},
			Inputs: []byte(`{"message":"hi"}`), CreatedAt: time.Now(),
		}
	}
	return seq
}

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
				seq = fillRuns(batch, seq)
				if _, err := s.CreateRuns(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
		})
	}
}

// BenchmarkRunLifecycle measures, per run, each write the all-in-one stack
// makes for a run, in batches of 32 (one transaction each, as the
// dispatcher's writers group them): its insert, its waiting mark and its
// bind+start (changes identical but for the run, grouped into one UPDATE),
// and its finish (each with its own outputs and time). The create stage is
// the baseline the others compare with.
func BenchmarkRunLifecycle(b *testing.B) {
	const n = 32
	ctx := context.Background()
	s, err := sqlite.OpenDir(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var spent [4]time.Duration
	stage := func(i int, f func() error) {
		start := time.Now()
		if err := f(); err != nil {
			b.Fatal(err)
		}
		spent[i] += time.Since(start)
	}
	seq := 0
	batch := make([]store.NewRun, n)
	ts := make([]store.Transition, n)
	b.ResetTimer()
	for i := 0; i < b.N; i += n {
		seq = fillRuns(batch, seq)
		stage(0, func() error { _, err := s.CreateRuns(ctx, batch); return err })
		now := time.Now()
		for j := range ts {
			ts[j] = store.Transition{Run: batch[j].Name, From: []tasks.Phase{tasks.PhaseQueued},
				To: tasks.PhaseWaitingForResources, At: now, WaitReason: "waiting for a node"}
		}
		stage(1, func() error { _, err := s.Transition(ctx, ts); return err })
		for j := range ts {
			ts[j] = store.Transition{Run: batch[j].Name, From: []tasks.Phase{tasks.PhaseQueued, tasks.PhaseWaitingForResources},
				To: tasks.PhaseRunning, Start: true, At: now, Bind: &store.Binding{Node: "n1"}}
		}
		stage(2, func() error { _, err := s.Transition(ctx, ts); return err })
		for j := range ts {
			ts[j] = store.Transition{Run: batch[j].Name, From: []tasks.Phase{tasks.PhaseRunning}, Attempt: 1, Node: "n1",
				To: tasks.PhaseSucceeded, At: time.Now(), Outputs: []byte(`{"message":"hi"}`)}
		}
		stage(3, func() error { _, err := s.Transition(ctx, ts); return err })
	}
	for i, name := range []string{"create", "wait", "bind-start", "finish"} {
		b.ReportMetric(float64(spent[i].Nanoseconds())/float64(b.N), name+"-ns/run")
	}
}
