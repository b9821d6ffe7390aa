package tasks

import (
	"context"
	"log/slog"
	"math"
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

// ProgressReport is how far a run has come, as its task tells it.
type ProgressReport struct {
	// Done is the work done so far, in the task's own units (epochs, steps,
	// items).
	Done float64 `json:"done"`
	// Total is the work there is in all, in the same units; 0 when unknown.
	Total float64 `json:"total,omitempty"`
	// Message says what the task is doing ("epoch 3").
	Message string `json:"message,omitempty"`
}

type progressKey struct{}

// WithProgressReporter returns a context in which Progress calls report.
// The runtime that executes a run installs one; tests of task functions
// may too.
func WithProgressReporter(ctx context.Context, report func(ProgressReport)) context.Context {
	return context.WithValue(ctx, progressKey{}, report)
}

// Progress tells the run's progress reporter how far the task has come. It
// does nothing where no reporter is installed, and drops a report whose
// numbers are negative, infinite or NaN, so that a reporter only ever sees
// numbers it can store and compare. It does not rate-limit: a reporter
// that stores reports keeps the pace it can afford.
func Progress(ctx context.Context, done, total float64, message string) {
	report, _ := ctx.Value(progressKey{}).(func(ProgressReport))
	if report == nil || !countable(done) || !countable(total) {
		return
	}
	report(ProgressReport{Done: done, Total: total, Message: message})
}

func countable(f float64) bool { return f >= 0 && !math.IsInf(f, 0) }

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
