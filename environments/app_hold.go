package environments

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/taskgate/taskgate/internal/apidocs"
	"github.com/taskgate/taskgate/internal/problem"
)

// defineHold defines the app's system task; a.mu is held.
func (a *AppEnvironment) defineHold(deps *Deps) error {
	if deps.Holder == nil {
		return fmt.Errorf("environment %s: AppConfig.Hold needs an App with a Dispatcher", a.cfg.Name)
	}
	log := deps.Logger
	if log == nil {
		log = slog.Default()
	}
	h := &appHold{name: a.cfg.Name, log: log}
	holds, err := deps.Holder.Define(HoldSpec{Environment: a.cfg.Name, Resources: a.cfg.Resources, Serve: h.serve})
	if err != nil {
		return fmt.Errorf("environment %s: %w", a.cfg.Name, err)
	}
	h.holds = holds
	a.hold = h
	return nil
}

func (a *AppEnvironment) heldBy() *appHold {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hold
}

func (a *AppEnvironment) startHold(ctx context.Context) error {
	h := a.heldBy()
	if h == nil {
		return fmt.Errorf("environment %s: Start before Build", a.cfg.Name)
	}
	return h.start(ctx)
}

func (a *AppEnvironment) stopHold(ctx context.Context) error {
	if h := a.heldBy(); h != nil {
		return h.stop(ctx)
	}
	return nil
}

// NotReady implements Readier: with AppConfig.Hold, why the app does not
// hold its devices in this process yet; "" once it does, or without Hold.
func (a *AppEnvironment) NotReady() string {
	if h := a.heldBy(); h != nil {
		return h.notReady()
	}
	return ""
}

// holdPoll spaces the reads of an app's hold while it is not held here.
const holdPoll = 200 * time.Millisecond

// appHold holds an AppEnvironment's Resources through the App's scheduler
// (AppConfig.Hold): one long-lived run of the environment's system task
// whose body, on the node it is placed on, lends its devices to the app
// until the run is stopped. Until then the app's routes answer 503 with
// the scheduler's reason.
type appHold struct {
	name  string
	holds Holds
	log   *slog.Logger

	mu      sync.Mutex
	held    *Replica // the body running in this process, nil when none
	run     string   // the hold's run, in the managing process
	waiting string   // why the hold is not here: the scheduler's reason, or where it runs

	cancel context.CancelFunc
	done   chan struct{}
}

type heldKey struct{}

// HeldDevices returns the devices an AppEnvironment with AppConfig.Hold
// holds, in a request its app serves: their IDs and the environment
// entries that give them to a subprocess (CUDA_VISIBLE_DEVICES,
// NVIDIA_VISIBLE_DEVICES). ok is false outside such a request.
func HeldDevices(ctx context.Context) (ids, env []string, ok bool) {
	r, ok := ctx.Value(heldKey{}).(*Replica)
	if !ok {
		return nil, nil, false
	}
	return r.Devices, r.Env, true
}

// serve is the hold's body: it lends the run's devices to this process's
// app until the run is stopped.
func (h *appHold) serve(ctx context.Context, r Replica) error {
	h.mu.Lock()
	h.held = &r
	h.mu.Unlock()
	r.Logger.Info("app holds its devices", "environment", h.name, "devices", r.Devices)
	r.Report("in-process")
	<-ctx.Done()
	h.mu.Lock()
	if h.held == &r {
		h.held = nil
	}
	h.mu.Unlock()
	return nil
}

// gate answers 503 with the reason while the app holds nothing here; the
// health check and the docs pass.
func (h *appHold) gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == healthPath || apidocs.Owns(req.URL.Path) {
			next.ServeHTTP(w, req)
			return
		}
		h.mu.Lock()
		held, why := h.held, h.waiting
		h.mu.Unlock()
		if held == nil {
			if why == "" {
				why = "starting"
			}
			w.Header().Set("Retry-After", "5")
			problem.Write(w, req, http.StatusServiceUnavailable, why)
			return
		}
		next.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), heldKey{}, held)))
	})
}

// notReady is the reason of the gate, "" while the app holds its devices
// here (or this process does not manage the hold).
func (h *appHold) notReady() string {
	if !h.holds.Managed() {
		return ""
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held != nil {
		return ""
	}
	if h.waiting == "" {
		return "starting"
	}
	return h.waiting
}

// start stops what a previous process left and keeps one hold running.
func (h *appHold) start(ctx context.Context) error {
	if !h.holds.Managed() {
		return nil
	}
	if err := h.holds.StopAll(ctx, "a new process manages the hold"); err != nil {
		return err
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h.mu.Lock()
	h.cancel, h.done = cancel, make(chan struct{})
	h.mu.Unlock()
	go h.loop(lctx, h.done)
	return nil
}

func (h *appHold) stop(ctx context.Context) error {
	h.mu.Lock()
	cancel, done := h.cancel, h.done
	h.cancel = nil
	h.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	<-done
	return h.holds.StopAll(ctx, "the app environment stopped")
}

// loop starts the hold, follows it, and starts another when it ends.
func (h *appHold) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		h.mu.Lock()
		run := h.run
		h.mu.Unlock()
		if run == "" {
			name, err := h.holds.Start(ctx)
			if err != nil && ctx.Err() == nil {
				h.log.Warn("start the app's hold", "environment", h.name, "err", err)
			}
			h.mu.Lock()
			h.run = name
			h.mu.Unlock()
		} else if st, err := h.holds.Status(ctx, run); err == nil {
			h.mu.Lock()
			switch {
			case st.Ended():
				h.log.Warn("the app's hold ended", "environment", h.name, "run", run, "phase", string(st.Phase), "error", st.Error)
				h.run, h.waiting = "", "the hold ended: "+st.Error
			case st.Waiting != "":
				h.waiting = "waiting for resources: " + st.Waiting
			case st.Addr != "" && h.held == nil:
				h.waiting = "held on node " + st.Node + ", not in this process: serve this app from a process that runs every node's agent, or use a server environment"
			default:
				h.waiting, backoff = "", 500*time.Millisecond
			}
			ended := h.run == ""
			h.mu.Unlock()
			if ended {
				select {
				case <-ctx.Done():
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 30*time.Second)
				continue
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(holdPoll):
		}
	}
}

// errHoldQueue: a held app cannot have a queue yet; its replays would
// ask for the same resources again.
var errHoldQueue = errors.New("AppConfig.Hold with a Queue is not supported: the replays would ask for the held resources again")
