package dispatch

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/scheduler"
	"github.com/taskgate/taskgate/tasks/store"
)

// Role says which parts of the dispatcher a process runs.
type Role int

const (
	// RoleAll runs the API, a scheduler candidate and a local node agent:
	// the single-process deployment. The default.
	RoleAll Role = iota
	// RoleAPI accepts and serves runs and competes for the scheduler
	// lease, but executes nothing.
	RoleAPI
	// RoleAgent only executes the runs bound to its node.
	RoleAgent
)

func (r Role) String() string {
	switch r {
	case RoleAll:
		return "all"
	case RoleAPI:
		return "api"
	case RoleAgent:
		return "agent"
	}
	return "Role(" + strconv.Itoa(int(r)) + ")"
}

// ParseRole reads "all", "api" or "agent" (TASKGATE_ROLE).
func ParseRole(s string) (Role, error) {
	switch s {
	case "", "all":
		return RoleAll, nil
	case "api":
		return RoleAPI, nil
	case "agent":
		return RoleAgent, nil
	}
	return 0, fmt.Errorf("dispatch: unknown role %q (want all, api or agent)", s)
}

func (r Role) runsAgent() bool  { return r == RoleAll || r == RoleAgent }
func (r Role) runsLeader() bool { return r == RoleAll || r == RoleAPI }

// NodeConfig describes the local node for the node agent.
type NodeConfig struct {
	// ID names the node; empty means the hostname. It must stay the same
	// across restarts so that the runs of a crashed agent are recovered.
	ID string
	// GPUs are the node's accelerators (discovery.ParseDeclaredGPUs or
	// discovery.DetectGPUs).
	GPUs []scheduler.Device
	// MilliCPU and MemoryBytes are what runs may use; zero means the whole
	// machine (discovery.LocalNode).
	MilliCPU    int64
	MemoryBytes int64
	Labels      map[string]string
}

// Config configures a Dispatcher. Store and Registry are required; every
// other field has a default.
type Config struct {
	Store    store.Store
	Registry *tasks.Registry
	// Logger receives the dispatcher's own logs; nil means slog.Default.
	Logger *slog.Logger
	Role   Role
	Node   NodeConfig
	// Clock is the time source for run timestamps and deadlines; nil means
	// time.Now. Timers still run on real time.
	Clock func() time.Time

	// HeartbeatInterval is how often a node agent reports alive (default
	// 1s); HeartbeatTimeout how long a silent node keeps its runs before
	// they are requeued (default 10s).
	HeartbeatInterval, HeartbeatTimeout time.Duration
	// LeaseTTL is how long the scheduler lease lasts without renewal
	// (default 5s); it is renewed every LeaseTTL/3, so another process takes
	// over within about LeaseTTL of the holder's death.
	LeaseTTL time.Duration
	// AbortGrace is how long a cancelled (aborted, timed out) function may
	// take to return before its run is marked anyway (default 10s).
	AbortGrace time.Duration
	// Retention is how long terminal runs keep their inputs, outputs and
	// logs (default 7 days; negative keeps them forever).
	Retention time.Duration
	// DeleteAfter is how long terminal runs are kept at all: older ones
	// are deleted with their attempts, events, deliveries and idempotency
	// keys, and read as not found (default 0: kept forever).
	DeleteAfter time.Duration
	// MaxOutputBytes caps a run's encoded outputs (default 1 MiB); larger
	// outputs fail the run with an error that says so.
	MaxOutputBytes int
	// Quotas caps the GPUs each project's runs may hold at once.
	Quotas map[string]int
	// Strategy is the scheduler's placement strategy.
	Strategy scheduler.Strategy
	// MaxInterruptions is how many times a run may be interrupted by the
	// platform (its node restarted, stopped heartbeating or was drained)
	// and go back to the queue; the next interruption fails it. It applies
	// to tasks whose Options.MaxInterruptions is zero (default 10;
	// negative: none, the first interruption fails the run).
	// Interruptions never spend a task's retry policy.
	MaxInterruptions int
	// DrainTimeout is how long Drain and Close let running attempts finish
	// before cancelling them and requeueing them as interruptions (default
	// 30s; negative: cancel them at once).
	DrainTimeout time.Duration

	// Observer hears of submits, attempts, ends, placements and commits,
	// for metrics; nil hears nothing.
	Observer Observer
	// TracerProvider makes the span of each attempt, a child of the span
	// its run was submitted in (kept with the run, so across processes and
	// restarts), and of each scheduling round that binds runs; nil makes
	// none.
	TracerProvider trace.TracerProvider
}

// Defaults of Config.
const (
	DefaultHeartbeatInterval = time.Second
	DefaultHeartbeatTimeout  = 10 * time.Second
	DefaultLeaseTTL          = 5 * time.Second
	DefaultAbortGrace        = 10 * time.Second
	DefaultRetention         = 7 * 24 * time.Hour
	DefaultMaxOutputBytes    = 1 << 20
	DefaultMaxInterruptions  = 10
	DefaultDrainTimeout      = 30 * time.Second
)

func (c *Config) validate() error {
	if c.Store == nil {
		return errors.New("dispatch: Config.Store is required")
	}
	if c.Registry == nil {
		return errors.New("dispatch: Config.Registry is required")
	}
	if c.Role < RoleAll || c.Role > RoleAgent {
		return fmt.Errorf("dispatch: Config.Role: unknown %v", c.Role)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.Node.ID == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("dispatch: Config.Node.ID is empty and the hostname is unknown: %w", err)
		}
		if h == "" {
			return errors.New("dispatch: Config.Node.ID is empty and so is the hostname")
		}
		c.Node.ID = h
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"HeartbeatInterval", &c.HeartbeatInterval, DefaultHeartbeatInterval},
		{"HeartbeatTimeout", &c.HeartbeatTimeout, DefaultHeartbeatTimeout},
		{"LeaseTTL", &c.LeaseTTL, DefaultLeaseTTL},
		{"AbortGrace", &c.AbortGrace, DefaultAbortGrace},
	} {
		if *d.v < 0 {
			return fmt.Errorf("dispatch: Config.%s is negative", d.name)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.HeartbeatTimeout <= c.HeartbeatInterval {
		return fmt.Errorf("dispatch: Config.HeartbeatTimeout %s must exceed HeartbeatInterval %s", c.HeartbeatTimeout, c.HeartbeatInterval)
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.DeleteAfter < 0 {
		return fmt.Errorf("dispatch: Config.DeleteAfter %s is negative (0 keeps runs forever)", c.DeleteAfter)
	}
	if c.MaxOutputBytes < 0 {
		return errors.New("dispatch: Config.MaxOutputBytes is negative")
	}
	if c.MaxOutputBytes == 0 {
		c.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if c.MaxInterruptions == 0 {
		c.MaxInterruptions = DefaultMaxInterruptions
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	for p, q := range c.Quotas {
		if q < 0 {
			return fmt.Errorf("dispatch: Config.Quotas[%q] is negative", p)
		}
	}
	return nil
}
