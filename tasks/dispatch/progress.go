package dispatch

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

// progressWriteInterval spaces the progress writer's commits: a task that
// calls tasks.Progress in a hot loop costs at most one write a second (of
// every run's latest report together), plus the last one, written before
// the attempt's outcome.
const progressWriteInterval = time.Second

// progressWriter keeps the latest tasks.Progress report of each running
// attempt and stores them in batches, the latest only: reports between
// two writes replace each other in memory, so a write never queues
// behind another and the store sees a bounded number of them.
type progressWriter struct {
	st      progressStore
	log     *slog.Logger
	now     func() time.Time
	mu      sync.Mutex
	pending map[string]store.ProgressUpdate // by run
	wake    chan struct{}
	flushMu sync.Mutex
}

// progressStore is the store method the progress writer uses.
type progressStore interface {
	SetProgress(ctx context.Context, ups []store.ProgressUpdate) error
}

func newProgressWriter(st progressStore, log *slog.Logger, now func() time.Time) *progressWriter {
	return &progressWriter{st: st, log: log, now: now, pending: map[string]store.ProgressUpdate{}, wake: make(chan struct{}, 1)}
}

// reporter is the tasks.WithProgressReporter hook of one attempt.
func (w *progressWriter) reporter(run string, attempt int) func(tasks.ProgressReport) {
	return func(p tasks.ProgressReport) {
		u := store.ProgressUpdate{Run: run, Attempt: attempt, Progress: tasks.RunProgress{ProgressReport: p, UpdatedAt: w.now()}}
		w.mu.Lock()
		w.pending[run] = u
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// flush stores the reports waiting. Progress is advice: a failed write is
// logged and its reports dropped (the next report of a run replaces them
// anyway), unless the store is unavailable: then they wait for the next
// write unless a newer one came.
func (w *progressWriter) flush(ctx context.Context) {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	if len(w.pending) == 0 {
		w.mu.Unlock()
		return
	}
	ups := make([]store.ProgressUpdate, 0, len(w.pending))
	for _, u := range w.pending {
		ups = append(ups, u)
	}
	clear(w.pending)
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, logWriteTimeout)
	defer cancel()
	err := w.st.SetProgress(ctx, ups)
	if err == nil {
		return
	}
	w.log.Warn("store task progress", "runs", len(ups), "err", err)
	if errors.Is(err, store.ErrUnavailable) {
		w.mu.Lock()
		for _, u := range ups {
			if _, newer := w.pending[u.Run]; !newer {
				w.pending[u.Run] = u
			}
		}
		w.mu.Unlock()
	}
}

// run writes reports as they come, at most one write per
// progressWriteInterval, until ctx is done.
func (w *progressWriter) run(ctx context.Context) {
	pause := time.NewTimer(progressWriteInterval)
	defer pause.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		w.flush(ctx)
		pause.Reset(progressWriteInterval)
		select {
		case <-ctx.Done():
			return
		case <-pause.C:
		}
	}
}
