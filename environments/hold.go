package environments

import (
	"context"
	"log/slog"

	"github.com/taskgate/taskgate/tasks"
)

// Resources is tasks.Resources, named here for the environment kinds that
// must not import package tasks (environments/server): they ask for
// resources through Deps.Holder and run nothing themselves.
type Resources = tasks.Resources

// SystemProject and SystemDomain name the built-in tasks whose runs hold
// an environment's resources (Holder): project "taskgate", domain
// "system", the task named after the environment. They are internal: no
// webhook environment's allowlist reaches them, and their runs belong to
// SystemSubject, so only admins see them (on /runs, /nodes and /queue,
// like any run): Wrap answers 403 to a caller whose subject is
// SystemSubject. Quotas count them under project "taskgate".
const (
	SystemProject = "taskgate"
	SystemDomain  = "system"
	SystemSubject = "taskgate:system"
)

// Holder places an environment's replicas through the App's scheduler,
// each a long-lived run of the environment's system task that holds its
// devices until it is stopped: the seam between an environment that
// serves on a GPU (environments/server) and the dispatcher it must not
// import. framework implements it over the App's Dispatcher; Deps.Holder
// is nil in an App without one.
//
// The body of a replica (HoldSpec.Serve) runs on the node the scheduler
// picked, in whichever process runs that node's agent, and tells the
// proxy where it answers through the store (Replica.Report); the proxy
// reads it back with Holds.Status. So a replica may serve from another
// machine, as long as the process there runs the same App (same
// environments), which registers the same system task.
type Holder interface {
	// Define registers spec's system task in the App's registry and
	// returns the handle that starts, follows and stops its replicas.
	// Call it at Build.
	Define(spec HoldSpec) (Holds, error)
}

// HoldSpec describes the replicas of one environment.
type HoldSpec struct {
	// Environment names the system task.
	Environment string
	// Resources each replica holds while it runs.
	Resources Resources
	// Priority orders the replicas among queued runs; higher first.
	Priority int
	// Serve is a replica's body, on its node: it starts what the replica
	// serves with Replica.Env, reports the address it answers on, keeps
	// it running and returns once ctx ends (the replica was stopped).
	// The allocation is held until it returns.
	Serve func(ctx context.Context, r Replica) error
}

// Replica is what a replica's body gets.
type Replica struct {
	// Name is the replica's run.
	Name string
	// Env restricts a process to the replica's devices
	// (CUDA_VISIBLE_DEVICES, NVIDIA_VISIBLE_DEVICES).
	Env []string
	// Devices are the device IDs of Env, for logs.
	Devices []string
	// Logger keeps lines with the replica's run (GET /run/{name}/logs).
	Logger *slog.Logger
	// Report tells the proxy the address ("host:port") the replica
	// answers on, or "" when it stopped answering (a restart).
	Report func(addr string)
}

// Holds starts, follows and stops the replicas of one HoldSpec.
type Holds interface {
	// Managed reports whether this process manages the replicas (starts
	// and balances them). A process that only runs a node agent does
	// not: it runs replicas the managing process started.
	Managed() bool
	// Start submits a replica; it returns the replica's run name.
	Start(ctx context.Context) (string, error)
	// Status reads a replica.
	Status(ctx context.Context, name string) (HoldStatus, error)
	// Stop asks a replica to stop (an abort: its body's ctx ends) and
	// returns at once.
	Stop(ctx context.Context, name, reason string) error
	// StopAll stops every replica of the spec that has not ended,
	// whoever started it (one left by a process that crashed), and
	// waits until they ended or ctx is done.
	StopAll(ctx context.Context, reason string) error
}

// HoldStatus is a replica as the proxy sees it.
type HoldStatus struct {
	// Phase of the replica's run.
	Phase tasks.Phase
	// Waiting says why a replica waits for resources ("no node has
	// A100:1 free"): its run is waiting_for_resources; "" otherwise.
	Waiting string
	// Addr is the address the replica reported, "" while it answers on
	// none.
	Addr string
	// Node and Devices are where the replica runs.
	Node    string
	Devices []string
	// Error is why an ended replica ended.
	Error string
}

// Ended reports whether the replica's run ended.
func (s HoldStatus) Ended() bool { return s.Phase.Terminal() }

// Readier is implemented by an environment that may not serve yet (a
// server waiting for its GPU): the App's /ready answers 503 with the
// reason while NotReady returns one.
type Readier interface {
	// NotReady says why the environment cannot serve now; "" when it can.
	NotReady() string
}
