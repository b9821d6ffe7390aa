package dispatch

import (
	"context"
	"errors"
	"fmt"
)

// Why Ready refuses, matched with errors.Is.
var (
	// ErrDraining: Drain or Close began; this process takes no new work.
	ErrDraining = errors.New("dispatch: draining")
	// ErrNotStarted: Start has not succeeded yet.
	ErrNotStarted = errors.New("dispatch: not started")
	// ErrStoreUnreachable: the store did not answer a ping; it wraps the
	// store's error.
	ErrStoreUnreachable = errors.New("dispatch: store unreachable")
)

// Drain stops this process taking work, for a graceful shutdown: Submit
// answers ErrClosed from now on, the scheduler candidate steps down (so
// another process's takes over at once), and the node agent starts no new
// attempt. Running attempts may finish for Config.DrainTimeout, or until
// ctx is done; those still running are then cancelled and go back to the
// queue as interruptions, which spend no retry. Drain returns once no
// attempt runs here. Reads (Get, Wait, Events, Logs) and Abort keep working
// until Close, which drains first when Drain was not called. Calls after
// the first wait for it to end.
func (d *Dispatcher) Drain(ctx context.Context) {
	d.drainOnce.Do(func() {
		d.draining.Store(true)
		d.submits.close()
		if d.leader != nil {
			d.leader.stop()
		}
		if d.agent != nil {
			ctx, cancel := context.WithTimeout(ctx, max(d.cfg.DrainTimeout, 0))
			defer cancel()
			d.agent.drain(ctx)
		}
	})
}

// Draining reports whether Drain (or Close) began.
func (d *Dispatcher) Draining() bool { return d.draining.Load() }

// Ready reports whether this process takes work, for a readiness probe:
// nil once Start succeeded, while not draining and while the store answers
// a ping; otherwise ErrDraining, ErrNotStarted or ErrStoreUnreachable
// (wrapping the store's error, whose text may name hosts: log it rather
// than show it).
func (d *Dispatcher) Ready(ctx context.Context) error {
	switch {
	case d.draining.Load():
		return ErrDraining
	case !d.running.Load():
		return ErrNotStarted
	}
	if err := d.st.Ping(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrStoreUnreachable, err)
	}
	return nil
}
