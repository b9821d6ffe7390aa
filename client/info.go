package client

import (
	"context"
	"time"

	"github.com/taskgate/taskgate/tasks"
)

// Identity is the caller as GET /me shows it.
type Identity struct {
	Subject string `json:"subject"`
	// Name is the display name, else the subject.
	Name   string   `json:"name"`
	Email  string   `json:"email,omitempty"`
	Groups []string `json:"groups"`
}

// Me reads the identity behind the client's credentials.
func (c *Client) Me(ctx context.Context) (*Identity, error) {
	var out Identity
	if err := c.getJSON(ctx, "/me", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TaskSummary is one task of GET /tasks.
type TaskSummary struct {
	Project     string `json:"project"`
	Domain      string `json:"domain"`
	Name        string `json:"name"`
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
	URL         string `json:"url"`
}

// ID is "project/domain/name".
func (t TaskSummary) ID() string { return t.Project + "/" + t.Domain + "/" + t.Name }

// Tasks lists the tasks the environment lets the caller see and run.
func (c *Client) Tasks(ctx context.Context) ([]TaskSummary, error) {
	var out struct {
		Tasks []TaskSummary `json:"tasks"`
	}
	if err := c.getJSON(ctx, "/tasks", nil, &out); err != nil {
		return nil, err
	}
	return out.Tasks, nil
}

// Node is one node as GET /nodes shows it.
type Node struct {
	ID              string            `json:"id"`
	Labels          map[string]string `json:"labels,omitempty"`
	Healthy         bool              `json:"healthy"`
	LastHeartbeat   time.Time         `json:"last_heartbeat"`
	StartedAt       time.Time         `json:"started_at"`
	MilliCPU        int64             `json:"milli_cpu"`
	FreeMilliCPU    int64             `json:"free_milli_cpu"`
	MemoryBytes     int64             `json:"memory_bytes"`
	FreeMemoryBytes int64             `json:"free_memory_bytes"`
	// Free counts free devices by kind ("H100", "A100-80GB MIG 1g.10gb").
	Free    map[string]int `json:"free,omitempty"`
	Devices []Device       `json:"devices,omitempty"`
	Runs    []string       `json:"runs,omitempty"`
}

// Device is a node's device and the run holding it ("" when free).
type Device struct {
	Type        string `json:"type"`
	Index       int    `json:"index"`
	UUID        string `json:"uuid,omitempty"`
	MIG         string `json:"mig,omitempty"`
	Parent      int    `json:"parent"`
	MemoryBytes int64  `json:"memory_bytes,omitempty"`
	Healthy     bool   `json:"healthy"`
	Run         string `json:"run,omitempty"`
}

// Nodes lists the nodes and their free devices: the admin group only.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var out struct {
		Nodes []Node `json:"nodes"`
	}
	if err := c.getJSON(ctx, "/nodes", nil, &out); err != nil {
		return nil, err
	}
	return out.Nodes, nil
}

// QueueSummary is GET /queue: non-terminal runs by phase and, from the
// process that holds the scheduler lease, the scheduler's view.
type QueueSummary struct {
	Runs      map[tasks.Phase]int `json:"runs"`
	Leader    bool                `json:"leader"`
	Scheduler *SchedulerSummary   `json:"scheduler,omitempty"`
}

// SchedulerSummary is the active scheduler's view of the queue.
type SchedulerSummary struct {
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
	GPUQuota  int    `json:"gpu_quota,omitempty"`
}

// ReasonCount is how many waiting runs share one reason.
type ReasonCount struct {
	Reason string `json:"reason"`
	Runs   int    `json:"runs"`
}

// Queue summarizes the queue: the admin group only.
func (c *Client) Queue(ctx context.Context) (*QueueSummary, error) {
	var out QueueSummary
	if err := c.getJSON(ctx, "/queue", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
