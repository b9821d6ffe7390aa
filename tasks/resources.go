package tasks

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
	// GPU as "TYPE:COUNT" ("A100:2"), a MIG partition ("A100:1g.10gb"), or a
	// bare count ("2", any type).
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
