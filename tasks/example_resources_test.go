package tasks_test

import (
	"errors"
	"fmt"

	"github.com/taskgate/taskgate/tasks"
)

// Resources read like Kubernetes specs; Parse turns them into numbers and
// canonical GPU alternatives, at definition time.
func ExampleResources_Parse() {
	req, err := tasks.Resources{
		CPU:          "500m",
		Memory:       "1.5Gi",
		GPU:          "h100:8",
		GPUFallbacks: []string{"A100-80GB:8", "A100:1g.10gb"},
	}.Parse()
	if err != nil {
		panic(err)
	}
	fmt.Println(req.MilliCPU, req.MemoryBytes)
	for _, g := range req.GPUs {
		fmt.Println(g)
	}
	// Output:
	// 500 1610612736
	// H100:8
	// A100-80GB:8
	// A100-80GB:1g.10gb
}

// Mistakes are errors that quote the offending text.
func ExampleParseGPU_errors() {
	for _, spec := range []string{"H10:8", "H100:9", "H100:1g.5gb", "A100:0"} {
		_, err := tasks.ParseGPU(spec)
		fmt.Println(err, errors.Is(err, tasks.ErrInvalidGPUCount))
	}
	// Output:
	// gpu "H10:8": unknown accelerator type: "H10" is not in the catalogue false
	// gpu "H100:9": invalid GPU count: 9 is over the limit of 8 for H100 true
	// gpu "H100:1g.5gb": invalid MIG profile: H100 offers 1g.10gb 1g.20gb 2g.20gb 3g.40gb 4g.40gb 7g.80gb false
	// gpu "A100:0": invalid GPU count: count must be at least 1 true
}

func ExampleAcceleratorFromProductName() {
	for _, p := range []string{"NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3", "Tesla T4"} {
		name, ok := tasks.AcceleratorFromProductName(p)
		fmt.Println(name, ok)
	}
	// Output:
	// A100-80GB true
	// H100 true
	// T4 true
}
