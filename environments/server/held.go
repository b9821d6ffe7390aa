package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/taskgate/taskgate/environments"
)

// Replicas size a held server (Modal's min_containers, max_containers,
// max_inputs and scaledown_window).
type Replicas struct {
	// Min replicas run at all times; 0 scales to zero when idle. Max
	// bounds the replicas added while requests wait for one; default
	// Min, at least 1. The zero Replicas is one replica, always.
	Min, Max int
	// MaxInFlight bounds the requests one replica serves at once; more
	// wait for a free replica (and make one added, below Max). 0: no
	// bound.
	MaxInFlight int
	// ScaledownWindow is how long a replica above Min stays idle before
	// it is stopped. Default 60 s.
	ScaledownWindow time.Duration
	// QueueTimeout bounds how long a request waits for a free replica
	// before it gets 503. Default 30 s.
	QueueTimeout time.Duration
	// PollInterval spaces the reads of the replicas' state in the store.
	// Default 200 ms.
	PollInterval time.Duration
}

// ErrNoHolder is the error of Build for a held server in an App without
// a Dispatcher, which has no scheduler to hold its resources.
var ErrNoHolder = errors.New("server holds resources but the App has no Dispatcher")

// held reports whether cfg asks for resources or replicas.
func held(cfg *Config) bool {
	r := cfg.Resources
	return r.CPU != "" || r.Memory != "" || r.Disk != "" || r.GPU != "" || len(r.GPUFallbacks) > 0 ||
		cfg.Replicas != (Replicas{})
}

func (s *Environment) held() bool { return held(&s.cfg) }

// checkHeld checks and completes the settings of a held server.
func checkHeld(cfg *Config) error {
	if !held(cfg) {
		return nil
	}
	if _, err := cfg.Resources.Parse(); err != nil {
		return fmt.Errorf("server %s: resources: %w", cfg.Name, err)
	}
	r := &cfg.Replicas
	if r.Min < 0 || r.Max < 0 || r.MaxInFlight < 0 || r.ScaledownWindow < 0 || r.QueueTimeout < 0 || r.PollInterval < 0 {
		return fmt.Errorf("server %s: negative Replicas setting", cfg.Name)
	}
	if *r == (Replicas{}) {
		r.Min = 1
	}
	if r.Max == 0 {
		r.Max = max(r.Min, 1)
	}
	if r.Max < r.Min {
		return fmt.Errorf("server %s: Replicas.Max %d below Min %d", cfg.Name, r.Max, r.Min)
	}
	if cfg.Port != 0 && r.Max > 1 {
		return fmt.Errorf("server %s: %d replicas cannot share Port %d; leave it 0 and read $PORT", cfg.Name, r.Max, cfg.Port)
	}
	r.ScaledownWindow = orDefault(r.ScaledownWindow, 60*time.Second)
	r.QueueTimeout = orDefault(r.QueueTimeout, 30*time.Second)
	r.PollInterval = orDefault(r.PollInterval, 200*time.Millisecond)
	return nil
}

// newPool defines the server's system task with the App's Holder.
func (s *Environment) newPool(deps *environments.Deps) (*pool, error) {
	if deps.Holder == nil {
		return nil, fmt.Errorf("server %s: %w", s.cfg.Name, ErrNoHolder)
	}
	holds, err := deps.Holder.Define(environments.HoldSpec{
		Environment: s.cfg.Name, Resources: s.cfg.Resources, Priority: s.cfg.Priority, Serve: s.serveReplica,
	})
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", s.cfg.Name, err)
	}
	return newPool(s, holds), nil
}

// startHeld starts managing the replicas; it does not wait for them, since
// a GPU may be busy for hours. Replicas that a crashed process left are
// stopped first.
func (s *Environment) startHeld(ctx context.Context) error {
	p := s.pool
	if p == nil {
		return fmt.Errorf("server %s: Start before Build", s.cfg.Name)
	}
	if !p.holds.Managed() {
		return nil // an agent's process runs replicas, another manages them
	}
	return p.start(ctx)
}

func (s *Environment) stopHeld(ctx context.Context) error {
	if s.pool == nil || !s.pool.holds.Managed() {
		return nil
	}
	return s.pool.stop(ctx)
}

// serveReplica is the body of a replica's run, on the node it was placed
// on: it starts the command with the replica's devices, reports the
// address it answers on (and "" while it restarts), restarts it when it
// exits, and stops it when the replica is stopped.
func (s *Environment) serveReplica(ctx context.Context, r environments.Replica) error {
	port := s.cfg.Port
	if port == 0 {
		var err error
		if port, err = freePort(s.cfg.Host); err != nil {
			return fmt.Errorf("server %s: %w: %w", s.cfg.Name, ErrStartup, err)
		}
	}
	var sup *supervisor
	sup = s.supervisor(port, r.Env, r.Logger, func(up bool) {
		if up {
			r.Report(sup.addr)
		} else {
			r.Report("")
		}
	})
	p, err := sup.launch()
	if err != nil {
		return err
	}
	if err := sup.waitReady(ctx, p); err != nil {
		sup.terminate(p, nil)
		return err
	}
	sup.logger.Info("replica answers", "run", r.Name, "addr", sup.addr, "devices", r.Devices)
	sup.setUp(true)
	done := make(chan struct{})
	sup.supervise(ctx, p, done, nil)
	return nil
}

// freePort asks the system for a port on host that is free now.
func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(port)
}

// NotReady implements environments.Readier: a held server whose replicas
// all wait for resources says why ("waiting for resources: no node has
// A100:1 free"); an unheld one, or one with a replica that answers, "".
func (s *Environment) NotReady() string {
	if !s.held() || s.pool == nil || !s.pool.holds.Managed() {
		return ""
	}
	return s.pool.waitingReason()
}
