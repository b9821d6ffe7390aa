package scheduler_test

import (
	"fmt"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/discovery"
	"github.com/taskgate/taskgate/tasks/scheduler"
)

// Two nodes, a quota, and three runs: one placed on its fallback, one over
// its project's quota, one asking for a type no node has.
func Example() {
	s, err := scheduler.New(scheduler.Config{ProjectGPUQuota: map[string]int{"research": 8}})
	if err != nil {
		panic(err)
	}
	for _, n := range [][2]string{{"a100-node", "A100-80GB:8"}, {"h100-node", "H100:4"}} {
		id, spec := n[0], n[1]
		gpus, err := discovery.ParseDeclaredGPUs(spec)
		if err != nil {
			panic(err)
		}
		node := scheduler.Node{ID: id, MilliCPU: 64000, MemoryBytes: 512 << 30, Devices: gpus, Healthy: true}
		if _, err := s.UpsertNode(node); err != nil {
			panic(err)
		}
	}
	runs := []struct {
		id, project string
		res         tasks.Resources
	}{
		{"train", "research", tasks.Resources{CPU: "8", Memory: "64Gi", GPU: "H100:8", GPUFallbacks: []string{"A100-80GB:8"}}},
		{"finetune", "research", tasks.Resources{GPU: "A100:1"}},
		{"render", "media", tasks.Resources{GPU: "L40S:2"}},
	}
	for _, r := range runs {
		req, err := r.res.Parse()
		if err != nil {
			panic(err)
		}
		if err := s.Enqueue(scheduler.Run{ID: r.id, Project: r.project, Request: req}); err != nil {
			panic(err)
		}
	}
	for _, b := range s.Schedule() {
		fmt.Printf("%s on %s, alternative %d, %d × %s\n", b.RunID, b.NodeID, b.Option, len(b.Devices), b.Devices[0].Type)
	}
	for _, w := range s.Waiting() {
		fmt.Printf("#%d %s: %s\n", w.Position, w.RunID, w.Reason)
	}
	// Output:
	// train on a100-node, alternative 1, 8 × A100-80GB
	// #1 finetune: project quota of 8 GPUs reached
	// #2 render: no node has L40S
}
