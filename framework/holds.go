package framework

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/middleware/identity"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
)

// holdTimeout is the attempt timeout of a replica's run: a replica holds
// its devices until it is stopped, so its attempt has no real bound
// (tasks.Options has no "none"; a century is one).
const holdTimeout = 100 * 365 * 24 * time.Hour

// holdPoll spaces the reads of StopAll while it waits for replicas to end.
const holdPoll = 50 * time.Millisecond

// holder implements environments.Holder over the App's Dispatcher: each
// environment's replicas are runs of a system task registered in the
// App's registry, which the Dispatcher's scheduler places like any run.
type holder struct {
	reg     *tasks.Registry
	d       *dispatch.Dispatcher
	managed bool

	mu    sync.Mutex
	holds []*holds
}

var system = identity.Identity{Subject: environments.SystemSubject}

// replicaInputs are the inputs of a replica's run: none that matter, but
// an object, so that the run reads like any other.
type replicaInputs struct{}

func (h *holder) Define(spec environments.HoldSpec) (environments.Holds, error) {
	if spec.Serve == nil {
		return nil, fmt.Errorf("hold %s: Serve is nil", spec.Environment)
	}
	task, err := tasks.Define(environments.SystemProject, environments.SystemDomain, spec.Environment,
		func(ctx context.Context, _ replicaInputs) (struct{}, error) {
			devs := tasks.Devices(ctx)
			ri, _ := tasks.RunInfoFromContext(ctx)
			ids := make([]string, len(devs))
			for i, d := range devs {
				ids[i] = d.ID()
			}
			err := spec.Serve(ctx, environments.Replica{
				Name: ri.Name, Env: tasks.DeviceEnv(devs), Devices: ids, Logger: tasks.Logger(ctx),
				// The address travels as the run's progress message: the
				// store carries it to the managing process, wherever the
				// replica runs. Its total is the attempt's number: a
				// retried replica's run keeps the last report of the
				// attempt before (on another node, or another port) until
				// the new attempt reports, and Status must not send
				// requests there.
				Report: func(addr string) {
					total := float64(max(ri.Attempt, 1))
					done := 0.0
					if addr != "" {
						done = total
					}
					tasks.Progress(ctx, done, total, addr)
				},
			})
			if ctx.Err() != nil {
				err = nil // stopped, as asked; the abort says so
			}
			return struct{}{}, err
		}, &tasks.Options{
			Description: "A replica of environment " + spec.Environment + ", holding its resources while it serves.",
			Resources:   spec.Resources,
			Timeout:     holdTimeout,
		})
	if err != nil {
		return nil, err
	}
	if err := h.reg.Register(task); err != nil {
		return nil, fmt.Errorf("hold %s: %w", spec.Environment, err)
	}
	hs := &holds{h: h, def: task.Definition(), priority: spec.Priority}
	h.mu.Lock()
	h.holds = append(h.holds, hs)
	h.mu.Unlock()
	return hs, nil
}

// stopAll stops the replicas of every environment this process manages:
// at shutdown, before the Dispatcher drains, since a replica never
// finishes on its own.
func (h *holder) stopAll(ctx context.Context) error {
	if !h.managed {
		return nil
	}
	h.mu.Lock()
	all := append([]*holds(nil), h.holds...)
	h.mu.Unlock()
	var errs []error
	for _, hs := range all {
		errs = append(errs, hs.StopAll(ctx, "the App is shutting down"))
	}
	return errors.Join(errs...)
}

// holds is the handle of one environment's replicas.
type holds struct {
	h        *holder
	def      *tasks.Definition
	priority int
}

func (hs *holds) Managed() bool { return hs.h.managed }

func (hs *holds) Start(ctx context.Context) (string, error) {
	in, _ := json.Marshal(replicaInputs{})
	run, _, err := hs.h.d.Submit(ctx, dispatch.SubmitRequest{Task: hs.def, Inputs: in, Caller: system, Priority: hs.priority})
	if err != nil {
		return "", err
	}
	return run.Name, nil
}

func (hs *holds) Status(ctx context.Context, name string) (environments.HoldStatus, error) {
	run, err := hs.h.d.Get(ctx, name)
	if err != nil {
		return environments.HoldStatus{}, err
	}
	s := environments.HoldStatus{Phase: run.Phase, Node: run.Node, Devices: run.Devices, Error: run.Error}
	switch run.Phase {
	case tasks.PhaseWaitingForResources:
		// Not while queued: a run the scheduler has not looked at yet may
		// be placed at once.
		_, s.Waiting = hs.h.d.QueuePosition(name)
		if s.Waiting == "" {
			s.Waiting = "waiting for resources" // the scheduler runs in another process
		}
	case tasks.PhaseRunning:
		if p := run.Progress; p != nil && p.Done > 0 && p.Done == p.Total && p.Total == float64(max(run.Attempt, 1)) {
			s.Addr = p.Message
		}
	}
	return s, nil
}

func (hs *holds) Stop(ctx context.Context, name, reason string) error {
	_, err := hs.h.d.Abort(ctx, name, reason)
	if errors.Is(err, dispatch.ErrAlreadyDone) {
		return nil
	}
	return err
}

func (hs *holds) StopAll(ctx context.Context, reason string) error {
	live := []tasks.Phase{tasks.PhaseQueued, tasks.PhaseWaitingForResources, tasks.PhaseInitializing, tasks.PhaseRunning}
	runs, _, err := hs.h.d.List(ctx, dispatch.ListOptions{Owner: system.Subject, Task: hs.def.ID(), Phases: live, Limit: 500})
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range runs {
		errs = append(errs, hs.Stop(ctx, r.Name, reason))
	}
	for _, r := range runs {
		for {
			got, err := hs.h.d.Get(ctx, r.Name)
			if err != nil || got.Done() {
				break
			}
			select {
			case <-ctx.Done():
				return errors.Join(append(errs, ctx.Err())...)
			case <-time.After(holdPoll):
			}
		}
	}
	return errors.Join(errs...)
}
