package scheduler

import (
	"errors"
	"fmt"
	"time"

	"github.com/taskgate/taskgate/tasks"
)

// Errors the scheduler returns; match them with errors.Is.
var (
	// ErrInvalidConfig: a Config that New refuses.
	ErrInvalidConfig = errors.New("invalid scheduler config")
	// ErrInvalidNode: a Node that UpsertNode refuses.
	ErrInvalidNode = errors.New("invalid node")
	// ErrInvalidRun: a Run that Enqueue refuses.
	ErrInvalidRun = errors.New("invalid run")
	// ErrDuplicateRun: Enqueue of a run ID that is already queued or bound.
	ErrDuplicateRun = errors.New("run already known to the scheduler")
)

// Strategy ranks the nodes a run fits on.
type Strategy int

const (
	// BinPack puts a run on the fullest node that fits it, which keeps whole
	// nodes free for the gang runs that need them. The default.
	BinPack Strategy = iota
	// Spread puts a run on the emptiest node that fits it, which spreads heat
	// and the blast radius of a node failure.
	Spread
)

func (s Strategy) String() string {
	switch s {
	case BinPack:
		return "binpack"
	case Spread:
		return "spread"
	default:
		return fmt.Sprintf("Strategy(%d)", int(s))
	}
}

// Config tunes a Scheduler. The zero value is ready to use.
type Config struct {
	// Strategy ranks the nodes that fit a run: BinPack (default) or Spread.
	Strategy Strategy
	// ProjectGPUQuota caps the devices (whole GPUs and MIG partitions alike)
	// that a project's bound runs may hold at once. A project that is absent
	// or maps to 0 has no cap.
	ProjectGPUQuota map[string]int
	// Reservations is how many waiting runs, taken in queue order, may each
	// hold back one node for themselves so that smaller runs behind them
	// cannot starve them. 0 means 1; a negative value turns reservations off.
	Reservations int
	// MaxBindingsPerRound caps the bindings one Schedule call makes, so a
	// caller can bound the work of one round; 0 means no cap.
	MaxBindingsPerRound int
}

func (c *Config) validate() error {
	if c.Strategy != BinPack && c.Strategy != Spread {
		return fmt.Errorf("%w: unknown strategy %v", ErrInvalidConfig, c.Strategy)
	}
	for p, q := range c.ProjectGPUQuota {
		if q < 0 {
			return fmt.Errorf("%w: project %q has a negative GPU quota %d", ErrInvalidConfig, p, q)
		}
	}
	if c.MaxBindingsPerRound < 0 {
		return fmt.Errorf("%w: negative MaxBindingsPerRound %d", ErrInvalidConfig, c.MaxBindingsPerRound)
	}
	return nil
}

func (c *Config) reservations() int {
	switch {
	case c.Reservations < 0:
		return 0
	case c.Reservations == 0:
		return 1
	default:
		return c.Reservations
	}
}

// Node is one machine's inventory.
type Node struct {
	ID     string            `json:"id"`
	Labels map[string]string `json:"labels,omitempty"`
	// MilliCPU and MemoryBytes are what runs may use in all.
	MilliCPU    int64 `json:"milli_cpu"`
	MemoryBytes int64 `json:"memory_bytes"`
	// Devices are the node's allocatable accelerators: whole GPUs, and the
	// MIG partitions of GPUs in MIG mode (such a GPU is not itself listed).
	Devices []Device `json:"devices,omitempty"`
	// Healthy nodes take runs; an unhealthy node's runs are requeued.
	Healthy bool `json:"healthy"`
}

// Device is one allocatable accelerator of a node.
type Device struct {
	// Type is a catalogue name ("A100-80GB"); a product the catalogue does
	// not know keeps the name nvidia-smi gave it and only matches requests
	// for any type.
	Type string `json:"type"`
	// Index is the nvidia-smi GPU index, or for a MIG partition its MIG
	// device index within the parent GPU.
	Index int `json:"index"`
	// UUID is "GPU-…" or "MIG-…" when detected; declared devices have none.
	UUID string `json:"uuid,omitempty"`
	// MIG is the partition's profile ("1g.10gb"), empty for a whole GPU.
	MIG string `json:"mig,omitempty"`
	// Parent is the GPU index a MIG partition lives on; for a whole GPU it
	// equals Index.
	Parent int `json:"parent"`
	// MemoryBytes is the device's memory when detected, else 0.
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
	// Healthy devices can be allocated.
	Healthy bool `json:"healthy"`
}

// TaskDevice converts d into what a task sees through tasks.Devices(ctx).
func (d Device) TaskDevice() tasks.Device {
	return tasks.Device{Index: d.Index, UUID: d.UUID, Type: d.Type, MIG: d.MIG}
}

// TaskDevices converts a binding's devices for tasks.RunInfo.
func TaskDevices(devs []Device) []tasks.Device {
	out := make([]tasks.Device, len(devs))
	for i, d := range devs {
		out[i] = d.TaskDevice()
	}
	return out
}

// Run is a pending unit of work.
type Run struct {
	ID      string        `json:"id"`
	Request tasks.Request `json:"request"`
	// Priority orders the queue: higher first.
	Priority int    `json:"priority"`
	Project  string `json:"project"`
	// Submitted is informative and not kept (a waiting run holds only
	// what placing it needs); the order among equal priorities is Seq.
	Submitted time.Time `json:"submitted"`
	// Seq orders runs of equal priority, lower first (FIFO). Zero means
	// "after every run enqueued so far".
	Seq uint64 `json:"seq"`
}

// Binding places a run: on which node, with which of its GPU alternatives
// (Option indexes Request.GPUs; 0 for a CPU-only run), on which devices.
type Binding struct {
	RunID   string   `json:"run_id"`
	NodeID  string   `json:"node_id"`
	Option  int      `json:"option"`
	Devices []Device `json:"devices,omitempty"`
}

// WaitInfo says where a waiting run stands.
type WaitInfo struct {
	RunID    string `json:"run_id"`
	Project  string `json:"project"`
	Priority int    `json:"priority"`
	// Position is 1 for the head of the queue.
	Position int `json:"position"`
	// Reason is why the last round did not place the run, in words.
	Reason string `json:"reason"`
	// ReservedNode is the node held back for this run, if any.
	ReservedNode string `json:"reserved_node,omitempty"`
}

// NodeInfo is one node as this scheduler holds it (Snapshot). GET /nodes
// shows dispatch.NodeStatus, built from the store, not this.
type NodeInfo struct {
	ID              string            `json:"id"`
	Labels          map[string]string `json:"labels,omitempty"`
	Healthy         bool              `json:"healthy"`
	MilliCPU        int64             `json:"milli_cpu"`
	FreeMilliCPU    int64             `json:"free_milli_cpu"`
	MemoryBytes     int64             `json:"memory_bytes"`
	FreeMemoryBytes int64             `json:"free_memory_bytes"`
	// Free counts free healthy devices by kind: "H100", "A100-80GB MIG 1g.10gb".
	Free    map[string]int `json:"free,omitempty"`
	Devices []DeviceInfo   `json:"devices,omitempty"`
	// Runs are the IDs of the runs bound to the node, sorted.
	Runs []string `json:"runs,omitempty"`
	// ReservedFor is the waiting run this node is held back for.
	ReservedFor string `json:"reserved_for,omitempty"`
}

// DeviceInfo is a device and the run holding it ("" when free).
type DeviceInfo struct {
	Device
	RunID string `json:"run_id,omitempty"`
}

// QueueSummary is the queue at a glance, for GET /queue.
type QueueSummary struct {
	Waiting  int              `json:"waiting"`
	Bound    int              `json:"bound"`
	Reserved int              `json:"reserved_nodes"`
	Projects []ProjectSummary `json:"projects,omitempty"`
	// Reasons counts waiting runs by reason, most common first.
	Reasons []ReasonCount `json:"reasons,omitempty"`
}

// ProjectSummary is one project's share of the queue.
type ProjectSummary struct {
	Project   string `json:"project"`
	Waiting   int    `json:"waiting"`
	Bound     int    `json:"bound"`
	GPUsInUse int    `json:"gpus_in_use"`
	// GPUQuota is 0 when the project has no cap.
	GPUQuota int `json:"gpu_quota,omitempty"`
}

// ReasonCount is how many waiting runs share one reason.
type ReasonCount struct {
	Reason string `json:"reason"`
	Runs   int    `json:"runs"`
}
