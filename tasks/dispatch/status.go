package dispatch

import (
	"context"
	"sort"
	"time"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/scheduler"
)

// NodeStatus is one registered node as GET /nodes shows it.
type NodeStatus struct {
	ID     string            `json:"id"`
	Labels map[string]string `json:"labels,omitempty"`
	// Healthy is false once the node missed HeartbeatTimeout.
	Healthy         bool      `json:"healthy"`
	LastHeartbeat   time.Time `json:"last_heartbeat"`
	StartedAt       time.Time `json:"started_at"`
	MilliCPU        int64     `json:"milli_cpu"`
	FreeMilliCPU    int64     `json:"free_milli_cpu"`
	MemoryBytes     int64     `json:"memory_bytes"`
	FreeMemoryBytes int64     `json:"free_memory_bytes"`
	// Free counts free devices by kind ("H100", "A100-80GB MIG 1g.10gb").
	Free    map[string]int `json:"free,omitempty"`
	Devices []DeviceStatus `json:"devices,omitempty"`
	// Runs are the runs bound to the node, sorted.
	Runs []string `json:"runs,omitempty"`
}

// DeviceStatus is a device and the run holding it ("" when free).
type DeviceStatus struct {
	// Type is a catalogue name ("A100-80GB"), or the name nvidia-smi gave a
	// product the catalogue does not know.
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
	MemoryBytes int64  `json:"memory_bytes,omitempty"`
	Healthy     bool   `json:"healthy"`
	Run         string `json:"run,omitempty"`
}

// deviceStatus is the one conversion of a scheduler device into the body of
// GET /nodes.
func deviceStatus(d scheduler.Device, run string) DeviceStatus {
	return DeviceStatus{
		Type: d.Type, Index: d.Index, UUID: d.UUID, MIG: d.MIG, Parent: d.Parent, MemoryBytes: d.MemoryBytes, Healthy: d.Healthy,
		Run: run,
	}
}

// Nodes lists the registered nodes with what their bound runs hold, as
// recorded in the store (so any process answers the same).
func (d *Dispatcher) Nodes(ctx context.Context) ([]NodeStatus, error) {
	nodes, err := d.st.Nodes(ctx)
	if err != nil {
		return nil, mapErr(err)
	}
	now := d.now()
	out := make([]NodeStatus, 0, len(nodes))
	for _, n := range nodes {
		inv, err := decodeInventory(n.Inventory)
		if err != nil {
			continue
		}
		// Each node's bound runs, through their index: not every active
		// run of a backlog.
		runs, err := d.st.ActiveRuns(ctx, n.ID)
		if err != nil {
			return nil, mapErr(err)
		}
		ns := NodeStatus{
			ID: n.ID, Labels: inv.Labels, LastHeartbeat: n.Heartbeat, StartedAt: n.StartedAt,
			Healthy:  inv.Healthy && now.Sub(n.Heartbeat) <= d.cfg.HeartbeatTimeout,
			MilliCPU: inv.MilliCPU, FreeMilliCPU: inv.MilliCPU, MemoryBytes: inv.MemoryBytes, FreeMemoryBytes: inv.MemoryBytes,
			Free: map[string]int{},
		}
		holder := map[string]string{}
		for _, r := range runs {
			if r.Node != n.ID || (r.Phase != tasks.PhaseInitializing && r.Phase != tasks.PhaseRunning) {
				continue
			}
			ns.Runs = append(ns.Runs, r.Name)
			for _, ref := range r.Devices {
				holder[ref] = r.Name
			}
			if def, ok := d.cfg.Registry.Lookup(r.Project, r.Domain, r.Task); ok {
				ns.FreeMilliCPU -= def.Request.MilliCPU
				ns.FreeMemoryBytes -= def.Request.MemoryBytes
			}
		}
		ns.FreeMilliCPU, ns.FreeMemoryBytes = max(0, ns.FreeMilliCPU), max(0, ns.FreeMemoryBytes)
		for _, dev := range inv.Devices {
			ds := deviceStatus(dev, holder[deviceRef(dev)])
			ns.Devices = append(ns.Devices, ds)
			if ds.Run == "" && dev.Healthy {
				ns.Free[deviceKind(dev)]++
			}
		}
		sort.Strings(ns.Runs)
		out = append(out, ns)
	}
	return out, nil
}

func deviceKind(d scheduler.Device) string {
	if d.MIG != "" {
		return d.Type + " MIG " + d.MIG
	}
	return d.Type
}

// QueueSummary is the queue at a glance, for GET /queue.
type QueueSummary struct {
	// Runs counts non-terminal runs by phase.
	Runs map[tasks.Phase]int `json:"runs"`
	// Leader reports whether this process holds the scheduler lease.
	Leader bool `json:"leader"`
	// Scheduler is the active scheduler's view (waiting runs by project and
	// reason, reserved nodes); present only on the leader.
	Scheduler *scheduler.QueueSummary `json:"scheduler,omitempty"`
}

// Queue summarizes the queue.
func (d *Dispatcher) Queue(ctx context.Context) (QueueSummary, error) {
	// Counted from the phase index: a scrape of the metrics or the
	// console's sampler must not read every waiting run's row.
	counts, err := d.st.CountActiveRuns(ctx)
	if err != nil {
		return QueueSummary{}, mapErr(err)
	}
	q := QueueSummary{Runs: counts}
	if d.leader != nil {
		if s, leading := d.leader.summary(); leading {
			q.Leader, q.Scheduler = true, &s
		}
	}
	return q, nil
}
