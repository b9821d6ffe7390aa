package dispatch

import (
	"context"
	"time"

	"github.com/taskgate/taskgate/tasks/store"
)

// KillAgentForTest stops d as SIGKILL would, as far as the store can tell:
// no more heartbeats or writes, and no deregistration.
func KillAgentForTest(d *Dispatcher) {
	d.stopBG()
	if d.agent != nil {
		d.agent.cancelAll(errNodeLost)
	}
}

// LeadWithBrokenRunForTest runs d's (unstarted) leader loop on the calling
// goroutine while handing it nil runs, which panic while the leader holds
// its lock, and returns what the loop panicked with. (It hands them over
// until the loop ends: a run handed over before the loop loaded its state
// is dropped with the rest.)
func LeadWithBrokenRunForTest(ctx context.Context, d *Dispatcher) (panicked any) {
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			d.leader.submitted([]*store.StoredRun{nil})
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	defer func() { panicked = recover() }()
	d.leader.lead(ctx)
	return nil
}

// LeaderBacklogForTest is how many notifications and handed-over runs d's
// scheduler candidate holds for its next step.
func LeaderBacklogForTest(d *Dispatcher) int { return d.leader.backlog() }

func (l *leader) backlog() int {
	l.inMu.Lock()
	defer l.inMu.Unlock()
	return len(l.inbox) + len(l.local)
}

// LeadingForTest reports whether d's scheduler candidate holds the lease
// and leads.
func LeadingForTest(d *Dispatcher) bool {
	_, leading := d.leader.summary()
	return leading
}

// ReleasedForTest tells d's leader that the given attempt of a run on d's
// node is over, as the agent does when its function returns.
func ReleasedForTest(d *Dispatcher, name string, attempt int) {
	d.leader.released(name, attempt)
}

// TransitionForTest commits t through d's transition writer, as the node
// agent does.
func TransitionForTest(d *Dispatcher, t store.Transition) (store.TransitionResult, error) {
	return d.trans.record(t)
}
