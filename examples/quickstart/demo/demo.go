package demo

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/webhook"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/taskexec"
)

// EchoInput is the input of demo/development/echo.
type EchoInput struct {
	Message string `json:"message" maxLength:"10000" example:"hi" doc:"Text to send back."`
}

// EchoOutput is the output of demo/development/echo.
type EchoOutput struct {
	Message string `json:"message" example:"hi"`
}

// SleepInput is the input of demo/development/sleep.
type SleepInput struct {
	Seconds float64 `json:"seconds" minimum:"0" maximum:"3600" example:"1.5" doc:"How long to sleep; fractions allowed."`
}

// SleepOutput is the output of demo/development/sleep.
type SleepOutput struct {
	Slept float64 `json:"slept" doc:"Seconds slept."`
}

// FlakyInput is the input of demo/development/flaky.
type FlakyInput struct {
	Failures int `json:"failures" minimum:"0" maximum:"4" example:"2" doc:"How many first attempts fail."`
}

// FlakyOutput is the output of demo/development/flaky.
type FlakyOutput struct {
	Attempt int `json:"attempt" doc:"The attempt that succeeded."`
}

// TrainInput is the input of demo/development/train; every field is optional.
type TrainInput struct {
	Epochs  int     `json:"epochs,omitempty" minimum:"0" maximum:"1000" doc:"Epochs to pretend to train."`
	Seconds float64 `json:"seconds,omitempty" minimum:"0" maximum:"600" doc:"How long to hold the GPU."`
}

// TrainOutput is the output of demo/development/train.
type TrainOutput struct {
	Devices            []int  `json:"devices" doc:"Indices of the GPUs the run was given."`
	CUDAVisibleDevices string `json:"cuda_visible_devices" doc:"CUDA_VISIBLE_DEVICES as a subprocess saw it."`
	Epochs             int    `json:"epochs"`
}

// Echo returns its message.
var Echo = tasks.MustDefine("demo", "development", "echo",
	func(_ context.Context, in EchoInput) (EchoOutput, error) {
		return EchoOutput{Message: in.Message}, nil
	}, &tasks.Options{Description: "Returns the message it was given.", Resources: tasks.Resources{CPU: "100m", Memory: "16Mi"}})

// Sleep sleeps, and stops early when the run is aborted.
var Sleep = tasks.MustDefine("demo", "development", "sleep",
	func(ctx context.Context, in SleepInput) (SleepOutput, error) {
		start := time.Now()
		t := time.NewTimer(time.Duration(in.Seconds * float64(time.Second)))
		defer t.Stop()
		select {
		case <-t.C:
			return SleepOutput{Slept: time.Since(start).Seconds()}, nil
		case <-ctx.Done():
			return SleepOutput{}, ctx.Err()
		}
	}, &tasks.Options{Description: "Sleeps for the given seconds; honours abort.", Resources: tasks.Resources{CPU: "100m"}})

// Flaky fails its first n attempts, then succeeds: it shows retries.
var Flaky = tasks.MustDefine("demo", "development", "flaky",
	func(ctx context.Context, in FlakyInput) (FlakyOutput, error) {
		ri, _ := tasks.RunInfoFromContext(ctx)
		if ri.Attempt <= in.Failures {
			tasks.Logger(ctx).Info("failing on purpose", "attempt", ri.Attempt)
			return FlakyOutput{}, fmt.Errorf("attempt %d fails on purpose", ri.Attempt)
		}
		return FlakyOutput{Attempt: ri.Attempt}, nil
	}, &tasks.Options{
		Description: "Fails its first `failures` attempts, then succeeds.",
		Retry: &tasks.RetryPolicy{
			MaxAttempts: 5, InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, Multiplier: 2, Jitter: 0.1,
		},
	})

// Train asks for one A100 and reports the devices it got, as the task's
// context and as a subprocess's CUDA_VISIBLE_DEVICES.
var Train = tasks.MustDefine("demo", "development", "train",
	func(ctx context.Context, in TrainInput) (TrainOutput, error) {
		devs := tasks.Devices(ctx)
		out := TrainOutput{Devices: make([]int, len(devs)), Epochs: in.Epochs}
		for i, d := range devs {
			out.Devices[i] = d.Index
		}
		cmd := taskexec.Command(ctx, "sh", "-c", `printf %s "$CUDA_VISIBLE_DEVICES"`)
		b, err := cmd.Output()
		if err != nil {
			// No shell (a distroless image): report what it would have seen.
			b = []byte(tasks.VisibleDevices(devs))
			tasks.Logger(ctx).Warn("no shell to show CUDA_VISIBLE_DEVICES", "err", err)
		}
		out.CUDAVisibleDevices = strings.TrimSpace(string(b))
		shell := err == nil
		// The wait is spread over the epochs; each one logs a line, has a
		// subprocess print one (stream stdout of GET /run/{name}/logs) and
		// reports progress (on GET /run/{name} and /run/{name}/events).
		wait := time.Duration(in.Seconds * float64(time.Second) / float64(max(in.Epochs, 1)))
		for epoch := 1; epoch <= max(in.Epochs, 1); epoch++ {
			if wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return out, ctx.Err()
				}
			}
			if epoch > in.Epochs {
				break // no epochs: the wait alone
			}
			msg := fmt.Sprintf("epoch %d", epoch)
			tasks.Logger(ctx).Info("epoch done", "epoch", epoch, "of", in.Epochs)
			if shell {
				if err := taskexec.Run(ctx, taskexec.Command(ctx, "sh", "-c", `echo "$1 on GPU $CUDA_VISIBLE_DEVICES"`, "sh", msg)); err != nil {
					return out, err
				}
			}
			tasks.Progress(ctx, float64(epoch), float64(in.Epochs), msg)
		}
		return out, nil
	}, &tasks.Options{Description: "Pretends to train on one A100: per epoch a log line, a subprocess's line and progress.", Resources: tasks.Resources{CPU: "1", Memory: "1Gi", GPU: "A100:1"}})

// Tasks are the quickstart's tasks.
func Tasks() []tasks.Definer { return []tasks.Definer{Echo, Sleep, Flaky, Train} }

// Registry returns a registry holding Tasks.
func Registry() *tasks.Registry {
	r := tasks.NewRegistry()
	r.MustRegister(Tasks()...)
	return r
}

// Webhook is the quickstart's webhook environment: every group, every task.
func Webhook() *webhook.Environment {
	return webhook.MustNew(webhook.Config{
		Settings: environments.Settings{
			Name:        "quickstart",
			Title:       "taskgate quickstart",
			Description: "Run the demo tasks over HTTP. Authenticate with `Authorization: Bearer <token>`.",
		},
		Groups: []string{webhook.GroupAll},
	})
}
