package dispatch

import (
	"context"
	"sync"
	"time"

	"github.com/taskgate/taskgate/tasks"
)

// Events streams a run's events with Seq > afterSeq: the stored ones, then
// live ones as they are committed (by any process). The channel closes after
// the terminal event or when ctx is done.
func (d *Dispatcher) Events(ctx context.Context, name string, afterSeq int64) (<-chan tasks.Event, error) {
	if _, err := d.st.GetRun(ctx, name); err != nil {
		return nil, mapErr(err)
	}
	sig, unwatch := d.watch.add(name)
	ch := make(chan tasks.Event, 16)
	go func() {
		defer close(ch)
		defer unwatch()
		last := afterSeq
		poll := time.NewTicker(watchPoll)
		defer poll.Stop()
		for {
			evs, err := d.st.Events(ctx, name, last)
			if err != nil && ctx.Err() == nil {
				d.log.Warn("read events", "run", name, "err", err)
			}
			for _, ev := range evs {
				select {
				case ch <- ev:
				case <-ctx.Done():
					return
				}
				last = ev.Seq
				if ev.Phase.Terminal() {
					return
				}
			}
			if len(evs) == 0 && err == nil {
				// Resumed after the terminal event: nothing more will come.
				if r, err := d.st.GetRun(ctx, name); err == nil && r.Done() && r.EventSeq <= last {
					return
				}
			}
			select {
			case <-sig:
			case <-poll.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// watchPoll re-reads a watched run in case a notification was lost.
const watchPoll = 5 * time.Second

// Wait returns the run once it is terminal, or when ctx is done (then the
// current run and ctx.Err()).
func (d *Dispatcher) Wait(ctx context.Context, name string) (*tasks.Run, error) {
	sig, unwatch := d.watch.add(name)
	defer unwatch()
	poll := time.NewTicker(watchPoll)
	defer poll.Stop()
	for {
		sr, err := d.st.GetRun(context.WithoutCancel(ctx), name)
		if err != nil {
			return nil, mapErr(err)
		}
		if sr.Done() {
			return &sr.Run, nil
		}
		select {
		case <-sig:
		case <-poll.C:
		case <-ctx.Done():
			return &sr.Run, ctx.Err()
		}
	}
}

// watchers wakes the Events and Wait calls of a run.
type watchers struct {
	mu    sync.Mutex
	byRun map[string]map[chan struct{}]struct{}
}

func (w *watchers) add(name string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	if w.byRun == nil {
		w.byRun = map[string]map[chan struct{}]struct{}{}
	}
	if w.byRun[name] == nil {
		w.byRun[name] = map[chan struct{}]struct{}{}
	}
	w.byRun[name][ch] = struct{}{}
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		delete(w.byRun[name], ch)
		if len(w.byRun[name]) == 0 {
			delete(w.byRun, name)
		}
		w.mu.Unlock()
	}
}

func (w *watchers) signal(name string) {
	w.mu.Lock()
	for ch := range w.byRun[name] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	w.mu.Unlock()
}

func (w *watchers) signalAll() {
	w.mu.Lock()
	for _, m := range w.byRun {
		for ch := range m {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	w.mu.Unlock()
}
