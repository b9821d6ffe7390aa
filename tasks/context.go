package tasks

import (
	"context"
	"log/slog"
	"strconv"
	"strings"

	"github.com/taskgate/taskgate/middleware/identity"
)

// Device is one accelerator (or MIG partition) given to a run.
type Device struct {
	// Index is the device's nvidia-smi index on its node.
	Index int `json:"index"`
	// UUID is "GPU-…" or "MIG-…" when known.
	UUID string `json:"uuid,omitempty"`
	Type string `json:"type"`
	// MIG is the MIG profile when the device is a partition.
	MIG string `json:"mig,omitempty"`
}

// ID is what CUDA_VISIBLE_DEVICES names the device by: the UUID when known
// (required for MIG partitions), else the index.
func (d Device) ID() string {
	if d.UUID != "" {
		return d.UUID
	}
	return strconv.Itoa(d.Index)
}

// RunInfo is what a task function knows about the run executing it.
type RunInfo struct {
	Name    string
	Attempt int
	Node    string
	Devices []Device
	// Caller is the identity that submitted the run.
	Caller identity.Identity
	// Logger writes lines that are kept with the run.
	Logger *slog.Logger
}

type runInfoKey struct{}

// WithRunInfo returns a context for executing a run. The dispatcher calls it;
// tests of task functions may too.
func WithRunInfo(ctx context.Context, ri RunInfo) context.Context {
	if ri.Logger == nil {
		ri.Logger = slog.Default()
	}
	ctx = identity.NewContext(ctx, ri.Caller)
	return context.WithValue(ctx, runInfoKey{}, ri)
}

// RunInfoFromContext returns the run being executed, if any.
func RunInfoFromContext(ctx context.Context) (RunInfo, bool) {
	ri, ok := ctx.Value(runInfoKey{}).(RunInfo)
	return ri, ok
}

// Devices returns the accelerators assigned to the running attempt.
func Devices(ctx context.Context) []Device {
	ri, _ := RunInfoFromContext(ctx)
	return ri.Devices
}

// Logger returns the run's logger (kept with the run), or slog.Default.
func Logger(ctx context.Context) *slog.Logger {
	if ri, ok := RunInfoFromContext(ctx); ok && ri.Logger != nil {
		return ri.Logger
	}
	return slog.Default()
}

// VisibleDevices is the value of CUDA_VISIBLE_DEVICES for devs: their IDs,
// comma-separated. No devices gives "" which hides every GPU, as intended for
// a run that asked for none.
func VisibleDevices(devs []Device) string {
	ids := make([]string, len(devs))
	for i, d := range devs {
		ids[i] = d.ID()
	}
	return strings.Join(ids, ",")
}

// DeviceEnv is the environment entries that restrict a process to devs.
func DeviceEnv(devs []Device) []string {
	v := VisibleDevices(devs)
	if len(devs) == 0 {
		v = "void" // NVIDIA container runtime's "no GPU"; CUDA treats it as none.
	}
	return []string{"CUDA_VISIBLE_DEVICES=" + VisibleDevices(devs), "NVIDIA_VISIBLE_DEVICES=" + v}
}
