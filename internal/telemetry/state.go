package telemetry

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
)

// DispatchState is what the state collector asks a dispatcher at scrape
// time; *dispatch.Dispatcher satisfies it.
type DispatchState interface {
	Nodes(ctx context.Context) ([]dispatch.NodeStatus, error)
	Queue(ctx context.Context) (dispatch.QueueSummary, error)
}

var _ DispatchState = (*dispatch.Dispatcher)(nil)

// scrapeTimeout bounds the store reads of one scrape.
const scrapeTimeout = 5 * time.Second

// maxReasons bounds the series of waiting reasons: the most common are
// kept, the rest summed under "other".
const maxReasons = 20

var (
	descRuns = prometheus.NewDesc("taskgate_queue_runs",
		"Runs not yet finished, by phase.", []string{"phase"}, nil)
	descWaitProject = prometheus.NewDesc("taskgate_queue_waiting_runs",
		"Runs waiting for placement, by project, as the leader sees them (only the leader reports).", []string{"project"}, nil)
	descWaitReason = prometheus.NewDesc("taskgate_queue_waiting_reason_runs",
		"Runs waiting for placement, by the scheduler's reason (only the leader reports).", []string{"reason"}, nil)
	descLeader = prometheus.NewDesc("taskgate_scheduler_leader",
		"1 while this process holds the scheduler lease.", nil, nil)
	descGPUs = prometheus.NewDesc("taskgate_node_gpus",
		"GPUs (or MIG partitions) of a node, by type and MIG profile.", []string{"node", "type", "mig"}, nil)
	descGPUsAllocated = prometheus.NewDesc("taskgate_node_gpus_allocated",
		"GPUs (or MIG partitions) held by runs.", []string{"node", "type", "mig"}, nil)
	descGPUsHealthy = prometheus.NewDesc("taskgate_node_gpus_healthy",
		"Healthy GPUs (or MIG partitions).", []string{"node", "type", "mig"}, nil)
	descCPU = prometheus.NewDesc("taskgate_node_cpu_millicores",
		"CPU runs may use on a node, in millicores.", []string{"node"}, nil)
	descCPUAllocated = prometheus.NewDesc("taskgate_node_cpu_allocated_millicores",
		"CPU the runs bound to a node requested, in millicores.", []string{"node"}, nil)
	descMem = prometheus.NewDesc("taskgate_node_memory_bytes",
		"Memory runs may use on a node.", []string{"node"}, nil)
	descMemAllocated = prometheus.NewDesc("taskgate_node_memory_allocated_bytes",
		"Memory the runs bound to a node requested.", []string{"node"}, nil)
	descHeartbeat = prometheus.NewDesc("taskgate_node_heartbeat_age_seconds",
		"Time since a node's last heartbeat.", []string{"node"}, nil)
	descNodeHealthy = prometheus.NewDesc("taskgate_node_healthy",
		"1 while a node heartbeats and reports healthy.", []string{"node"}, nil)
)

// StateCollector reports the queue, the leadership and the nodes as the
// dispatcher answers GET /queue and GET /nodes, read at each scrape rather
// than kept up to date on every change. Node and device labels come from
// the registered nodes, task-free and bounded by the fleet.
type StateCollector struct {
	d   DispatchState
	now func() time.Time
}

// NewStateCollector returns a collector of d's state; register it on the
// App's registry.
func NewStateCollector(d DispatchState) *StateCollector {
	return &StateCollector{d: d, now: time.Now}
}

// RegisterState registers d's StateCollector on reg, unless reg has one
// already (two Apps sharing a registry report the first one's state).
func RegisterState(reg prometheus.Registerer, d DispatchState) error {
	_, err := register(reg, prometheus.Collector(NewStateCollector(d)))
	return err
}

// Describe sends every description.
func (c *StateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRuns, descWaitProject, descWaitReason, descLeader, descGPUs,
		descGPUsAllocated, descGPUsHealthy, descCPU, descCPUAllocated, descMem, descMemAllocated, descHeartbeat, descNodeHealthy} {
		ch <- d
	}
}

// Collect reads the queue and the nodes. A read that fails leaves its
// metrics out of this scrape, as an invalid metric the handler reports.
func (c *StateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if q, err := c.d.Queue(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(descRuns, err)
	} else {
		c.queue(ch, q)
	}
	if nodes, err := c.d.Nodes(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(descGPUs, err)
	} else {
		c.nodes(ch, nodes)
	}
}

func (c *StateCollector) queue(ch chan<- prometheus.Metric, q dispatch.QueueSummary) {
	// Every phase has its series, zero included, so that a rate or an
	// alert sees the queue empty rather than the series gone.
	for _, phase := range activePhases {
		ch <- prometheus.MustNewConstMetric(descRuns, prometheus.GaugeValue, float64(q.Runs[phase]), string(phase))
	}
	ch <- prometheus.MustNewConstMetric(descLeader, prometheus.GaugeValue, boolValue(q.Leader))
	if q.Scheduler == nil {
		return
	}
	for _, p := range q.Scheduler.Projects {
		ch <- prometheus.MustNewConstMetric(descWaitProject, prometheus.GaugeValue, float64(p.Waiting), p.Project)
	}
	other := 0
	for i, r := range q.Scheduler.Reasons { // most common first
		if i >= maxReasons {
			other += r.Runs
			continue
		}
		ch <- prometheus.MustNewConstMetric(descWaitReason, prometheus.GaugeValue, float64(r.Runs), r.Reason)
	}
	if other > 0 {
		ch <- prometheus.MustNewConstMetric(descWaitReason, prometheus.GaugeValue, float64(other), "other")
	}
}

var activePhases = []tasks.Phase{tasks.PhaseQueued, tasks.PhaseWaitingForResources, tasks.PhaseInitializing, tasks.PhaseRunning}

type deviceKey struct{ typ, mig string }

type deviceCount struct{ total, allocated, healthy int }

func (c *StateCollector) nodes(ch chan<- prometheus.Metric, nodes []dispatch.NodeStatus) {
	now := c.now()
	for _, n := range nodes {
		ch <- prometheus.MustNewConstMetric(descNodeHealthy, prometheus.GaugeValue, boolValue(n.Healthy), n.ID)
		ch <- prometheus.MustNewConstMetric(descHeartbeat, prometheus.GaugeValue, max(0, now.Sub(n.LastHeartbeat).Seconds()), n.ID)
		ch <- prometheus.MustNewConstMetric(descCPU, prometheus.GaugeValue, float64(n.MilliCPU), n.ID)
		ch <- prometheus.MustNewConstMetric(descCPUAllocated, prometheus.GaugeValue, float64(n.MilliCPU-n.FreeMilliCPU), n.ID)
		ch <- prometheus.MustNewConstMetric(descMem, prometheus.GaugeValue, float64(n.MemoryBytes), n.ID)
		ch <- prometheus.MustNewConstMetric(descMemAllocated, prometheus.GaugeValue, float64(n.MemoryBytes-n.FreeMemoryBytes), n.ID)
		counts := map[deviceKey]*deviceCount{}
		var order []deviceKey
		for _, d := range n.Devices {
			k := deviceKey{d.Type, d.MIG}
			dc := counts[k]
			if dc == nil {
				dc = &deviceCount{}
				counts[k] = dc
				order = append(order, k)
			}
			dc.total++
			if d.Run != "" {
				dc.allocated++
			}
			if d.Healthy {
				dc.healthy++
			}
		}
		for _, k := range order {
			dc := counts[k]
			ch <- prometheus.MustNewConstMetric(descGPUs, prometheus.GaugeValue, float64(dc.total), n.ID, k.typ, k.mig)
			ch <- prometheus.MustNewConstMetric(descGPUsAllocated, prometheus.GaugeValue, float64(dc.allocated), n.ID, k.typ, k.mig)
			ch <- prometheus.MustNewConstMetric(descGPUsHealthy, prometheus.GaugeValue, float64(dc.healthy), n.ID, k.typ, k.mig)
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
