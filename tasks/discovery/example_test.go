package discovery_test

import (
	"fmt"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/discovery"
	"github.com/taskgate/taskgate/tasks/scheduler"
)

// A node's GPUs as nvidia-smi reports them, MIG partitions included.
func ExampleParseNvidiaSMI() {
	query := "0, NVIDIA H100 80GB HBM3, GPU-b3a1c2d4-1111-4a2b-8c3d-5e6f7a8b9c0d, 81559 MiB\n"
	list := `GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-b3a1c2d4-1111-4a2b-8c3d-5e6f7a8b9c0d)
  MIG 3g.40gb     Device  0: (UUID: MIG-0c4d7c2e-5e2a-5d0f-9f1f-6f5c6b1e9a11)
  MIG 3g.40gb     Device  1: (UUID: MIG-1d5e8d3f-6f3b-5e1a-8a2b-7a6d7c2f0b22)
`
	devs, err := discovery.ParseNvidiaSMI(query, list)
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
