package tasks

import (
	"slices"
	"strconv"
	"strings"
)

// Resources is what a task asks of the node that runs it. Every field is text
// so that definitions read like Kubernetes or Modal specs; Parse checks them at
// definition time, never at run time.
type Resources struct {
	// CPU in cores ("2", "0.5") or millicores ("500m"). Empty means no request.
	CPU string `json:"cpu,omitempty"`
	// Memory as a Kubernetes quantity ("512Mi", "8Gi", "1G").
	Memory string `json:"memory,omitempty"`
	// Disk as a Kubernetes quantity.
	Disk string `json:"disk,omitempty"`
	// GPU as "TYPE:COUNT" ("A100:2"), a MIG partition ("A100:1g.10gb"), a
	// bare count ("2", any type) or a bare type ("H100", one device). Types
	// are catalogue names (see Accelerators), case-insensitive.
	GPU string `json:"gpu,omitempty"`
	// GPUFallbacks are tried in order after GPU when it cannot be placed.
	GPUFallbacks []string `json:"gpu_fallbacks,omitempty"`
}

// Request is Resources parsed into numbers the scheduler compares.
type Request struct {
	MilliCPU    int64 `json:"milli_cpu"`
	MemoryBytes int64 `json:"memory_bytes"`
	DiskBytes   int64 `json:"disk_bytes"`
	// GPUs holds GPU then each fallback, in order. Empty for a CPU-only task.
	GPUs []GPURequest `json:"gpus,omitempty"`
}

// GPURequest is one alternative of a GPU spec.
type GPURequest struct {
	// Type is a catalogue name ("A100-80GB"), a family ("A100": either
	// A100 model), or "" for any type.
	Type  string `json:"type,omitempty"`
	Count int    `json:"count"`
	// MIG is a MIG profile ("1g.10gb"); Count is then 1.
	MIG string `json:"mig,omitempty"`
}

// String returns the canonical spec text of g, which ParseGPU reads back to g:
// "A100-80GB:4", "H100:1g.10gb", or "2" for a bare count.
func (g GPURequest) String() string {
	switch {
	case g.MIG != "":
		return g.Type + ":" + g.MIG
	case g.Type == "":
		return strconv.Itoa(g.Count)
	default:
		return g.Type + ":" + strconv.Itoa(g.Count)
	}
}

// Matches reports whether one device of deviceType (a catalogue name, as node
// inventories hold it) with MIG profile mig ("" for a whole GPU) can serve
// g. Whole-GPU requests never take MIG partitions and the other way round;
// a family type ("A100") takes any of its members; an empty type takes any
// whole GPU.
func (g GPURequest) Matches(deviceType, mig string) bool {
	if !strings.EqualFold(g.MIG, mig) {
		return false
	}
	if g.Type == "" || strings.EqualFold(g.Type, deviceType) {
		return true
	}
	want, ok := LookupAccelerator(g.Type)
	if !ok {
		return false
	}
	have, ok := CanonicalAccelerator(deviceType)
	if !ok {
		return false
	}
	return want.Name == have || slices.Contains(want.Members, have)
}

// GPUCount is the number of devices the first alternative asks for, 0 for a
// CPU-only request.
func (r Request) GPUCount() int {
	if len(r.GPUs) == 0 {
		return 0
	}
	return r.GPUs[0].Count
}
