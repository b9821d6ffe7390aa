package scheduler_test

import (
	"fmt"

	"github.com/taskgate/taskgate/tasks"
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
		gpus, err := scheduler.ParseDeclaredGPUs(spec)
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

// A node's GPUs as nvidia-smi reports them, MIG partitions included.
func ExampleParseNvidiaSMI() {
	query := "0, NVIDIA H100 80GB HBM3, GPU-b3a1c2d4-1111-4a2b-8c3d-5e6f7a8b9c0d, 81559 MiB\n"
	list := `GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-b3a1c2d4-1111-4a2b-8c3d-5e6f7a8b9c0d)
  MIG 3g.40gb     Device  0: (UUID: MIG-0c4d7c2e-5e2a-5d0f-9f1f-6f5c6b1e9a11)
  MIG 3g.40gb     Device  1: (UUID: MIG-1d5e8d3f-6f3b-5e1a-8a2b-7a6d7c2f0b22)
`
	devs, err := scheduler.ParseNvidiaSMI(query, list)
	if err != nil {
		panic(err)
	}
	for _, d := range devs {
		fmt.Println(d.Type, d.MIG, d.Parent, d.Index, d.UUID)
	}
	fmt.Println(tasks.VisibleDevices(scheduler.TaskDevices(devs)))
	// Output:
	// H100 3g.40gb 0 0 MIG-0c4d7c2e-5e2a-5d0f-9f1f-6f5c6b1e9a11
	// H100 3g.40gb 0 1 MIG-1d5e8d3f-6f3b-5e1a-8a2b-7a6d7c2f0b22
	// MIG-0c4d7c2e-5e2a-5d0f-9f1f-6f5c6b1e9a11,MIG-1d5e8d3f-6f3b-5e1a-8a2b-7a6d7c2f0b22
}
