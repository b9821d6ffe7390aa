package dispatch

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

// committer commits phase changes in one transaction now, and tells this
// process's subscribers. After an error none of ts is recorded.
type committer interface {
	commit(ctx context.Context, ts []store.Transition) ([]store.TransitionResult, error)
}

// recorder is a committer that also records one change through the
// group-commit writer, with the changes of concurrent runs: the node
// agent's path for every attempt it starts and ends.
type recorder interface {
	committer
	record(t store.Transition) (store.TransitionResult, error)
}

var _ recorder = (*transitionWriter)(nil)

// transitioner is what the transition writer needs of the store;
// store.Store satisfies it.
type transitioner interface {
	Transition(ctx context.Context, ts []store.Transition) ([]store.TransitionResult, error)
}

// transitionWriter is the one way phase changes reach the store: it
// groups the changes of concurrent runs into one transaction (record),
// writes a part's batch at once (commit), and publishes what committed to
// this process's subscribers.
type transitionWriter struct {
	st transitioner
	// logs is flushed before an attempt's outcome is written.
	logs *logWriter
	// progress is flushed with logs, so an ended run shows its last report.
	progress *progressWriter
	publish  func(tasks.Run, tasks.Event)
	obs      Observer
	tracer   trace.Tracer
	q        chan *transReq
}

type transReq struct {
	t    store.Transition
	done chan transRes
}

type transRes struct {
	res store.TransitionResult
	err error
}

const maxTransitionBatch = 512

func newTransitionWriter(st transitioner, logs *logWriter, progress *progressWriter, publish func(tasks.Run, tasks.Event), obs Observer, tracer trace.Tracer) *transitionWriter {
	return &transitionWriter{st: st, logs: logs, progress: progress, publish: publish, obs: obs, tracer: tracer, q: make(chan *transReq, 4096)}
}

// record commits t through the writer, which groups the phase changes of
// concurrent runs into one transaction.
func (w *transitionWriter) record(t store.Transition) (store.TransitionResult, error) {
	tr := &transReq{t: t, done: make(chan transRes, 1)}
	w.q <- tr
	r := <-tr.done
	return r.res, r.err
}

// close ends run once the queued changes are written: no record may
// follow.
func (w *transitionWriter) close() { close(w.q) }

func (w *transitionWriter) run() {
	batch := make([]*transReq, 0, maxTransitionBatch)
	ts := make([]store.Transition, 0, maxTransitionBatch)
	for first := range w.q {
		batch = drain(append(batch[:0], first), w.q, maxTransitionBatch)
		ts = ts[:0]
		ending := false
		for _, tr := range batch {
			ts = append(ts, tr.t)
			ending = ending || tr.t.To != tasks.PhaseRunning
		}
		if ending {
			// A finished attempt's log lines are stored before its
			// outcome, so whoever sees the outcome sees every line.
			w.logs.flush(context.Background())
			w.progress.flush(context.Background())
		}
		res, err := w.commit(context.Background(), ts)
		if err != nil && len(batch) > 1 {
			// One change the store refuses must not cost the others
			// their outcome: commit them one by one.
			for _, tr := range batch {
				r, err := w.commit(context.Background(), []store.Transition{tr.t})
				if err != nil {
					tr.done <- transRes{err: err}
					continue
				}
				tr.done <- transRes{res: r[0]}
			}
			continue
		}
		for i, tr := range batch {
			if err != nil {
				tr.done <- transRes{err: err}
				continue
			}
			tr.done <- transRes{res: res[i]}
		}
	}
}

// commit writes ts and tells local subscribers.
func (w *transitionWriter) commit(ctx context.Context, ts []store.Transition) ([]store.TransitionResult, error) {
	start := time.Now()
	res, err := w.st.Transition(ctx, ts)
	commitSpan(w.tracer, "transitions", start, len(ts), err)
	if err != nil {
		return nil, fmt.Errorf("dispatch: record phase: %w", err)
	}
	w.obs.Committed("transitions", len(ts), time.Since(start))
	observeTransitions(w.obs, ts, res)
	for _, r := range res {
		for _, ev := range r.Events {
			w.publish(r.Run.Run, ev)
		}
	}
	return res, nil
}
