package taskexec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/taskgate/taskgate/tasks"
)

// ExitPermanent is the exit code by which a program says "do not retry":
// the run fails at once, whatever its retry policy. Any other non-zero
// code fails the attempt, and the policy decides whether another follows.
const ExitPermanent = 3

// DefaultGracePeriod is how long a program has between SIGTERM and
// SIGKILL when Options.GracePeriod is zero. It matches the dispatcher's
// default AbortGrace, after which a run is marked aborted anyway.
const DefaultGracePeriod = 10 * time.Second

// The environment variables of the protocol between a command task and its
// program (see the package doc).
const (
	EnvInputs   = "TASKGATE_INPUTS"
	EnvOutputs  = "TASKGATE_OUTPUTS"
	EnvProgress = "TASKGATE_PROGRESS"
	EnvRun      = "TASKGATE_RUN"
	EnvAttempt  = "TASKGATE_ATTEMPT"
)

// reservedEnv are the variables the runtime sets per attempt: Options.Env
// may not set them, so that a program always sees its own run's files and
// devices.
var reservedEnv = []string{EnvInputs, EnvOutputs, EnvProgress, EnvRun, EnvAttempt, "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"}

// Options configure a command task. The zero value is valid.
type Options struct {
	// Options are those of every task: resources, retries, timeout.
	tasks.Options
	// Dir is where each attempt's working directory is made (mode 0700,
	// removed when the attempt ends); empty means os.TempDir(). The
	// program runs there, so the paths in argv are absolute or found on
	// PATH.
	Dir string
	// Env adds KEY=VALUE entries to the program's environment, which is
	// taskgate's own less its TASKGATE_* variables (they may hold
	// secrets). The variables of the protocol and the devices' are set by
	// the runtime and may not be given here.
	Env []string
	// GracePeriod is the time between SIGTERM and SIGKILL when the run is
	// aborted or times out; zero means DefaultGracePeriod. Keep it within
	// the dispatcher's AbortGrace, past which the run is marked ended (and
	// its devices given to another) while the program may still run.
	GracePeriod time.Duration
}

// command is a validated argv with its settings.
type command struct {
	argv  []string
	dir   string
	env   []string
	grace time.Duration
}

func newCommand(argv []string, opts *Options) (*command, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("command: argv names no program")
	}
	for _, kv := range opts.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("command: Env entry %q is not KEY=VALUE", kv)
		}
		for _, r := range reservedEnv {
			if strings.EqualFold(k, r) {
				return nil, fmt.Errorf("command: Env may not set %s: the runtime sets it for each attempt", r)
			}
		}
	}
	if opts.GracePeriod < 0 {
		return nil, fmt.Errorf("command: negative grace period %s", opts.GracePeriod)
	}
	grace := opts.GracePeriod
	if grace == 0 {
		grace = DefaultGracePeriod
	}
	return &command{argv: append([]string(nil), argv...), dir: opts.Dir, env: append([]string(nil), opts.Env...), grace: grace}, nil
}

// DefineCommand declares a task whose body is a program: argv[0] with the
// arguments argv[1:]. Inputs are typed and validated as for tasks.Define;
// the program reads them as JSON and writes its outputs as JSON, which are
// checked against O's schema (see the package doc for the protocol).
// Every error in the definition is reported here.
func DefineCommand[I, O any](project, domain, name string, argv []string, opts *Options) (*tasks.Task[I, O], error) {
	if opts == nil {
		opts = &Options{}
	}
	c, err := newCommand(argv, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %s/%s/%s: %w", tasks.ErrInvalidDefinition, project, domain, name, err)
	}
	outs := newOutputs[O]()
	return tasks.Define(project, domain, name, func(ctx context.Context, in I) (O, error) {
		var zero O
		raw, err := json.Marshal(in)
		if err != nil {
			return zero, tasks.Permanent(fmt.Errorf("encode inputs: %w", err))
		}
		var out O
		err = c.run(ctx, raw, func(path string) error {
			out, err = readOutputs[O](path, outs)
			return err
		})
		if err != nil {
			return zero, err
		}
		return out, nil
	}, &opts.Options)
}

// MustDefineCommand is DefineCommand that panics on error, for
// package-level task vars.
func MustDefineCommand[I, O any](project, domain, name string, argv []string, opts *Options) *tasks.Task[I, O] {
	t, err := DefineCommand[I, O](project, domain, name, argv, opts)
	if err != nil {
		panic(err)
	}
	return t
}

// run executes one attempt of the program in a working directory of its
// own and, when it exits 0, reads its outputs with read before the
// directory goes.
func (c *command) run(ctx context.Context, inputs []byte, read func(path string) error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	dir, err := os.MkdirTemp(c.dir, "taskgate-cmd-")
	if err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	defer os.RemoveAll(dir)
	inPath, outPath := filepath.Join(dir, "inputs.json"), filepath.Join(dir, "outputs.json")
	if err := os.WriteFile(inPath, inputs, 0o600); err != nil {
		return fmt.Errorf("write inputs: %w", err)
	}
	// The inputs file is the program's stdin too: a file, unlike a pipe,
	// needs no goroutine to feed it and no care for a program that never
	// reads it.
	stdin, err := os.Open(inPath)
	if err != nil {
		return fmt.Errorf("open inputs: %w", err)
	}
	defer stdin.Close()

	cmd := exec.Command(c.argv[0], c.argv[1:]...)
	cmd.Dir, cmd.Stdin = dir, stdin
	pipes, err := newPipes(cmd)
	if err != nil {
		return err
	}
	ri, _ := tasks.RunInfoFromContext(ctx)
	cmd.Env = append(c.environ(ri, inPath, outPath, pipes.progress != nil), traceEnv(ctx)...)
	newProcessGroup(cmd)
	err = cmd.Start()
	pipes.closeChildEnds()
	if err != nil {
		pipes.closeOurEnds()
		return startError(c.argv[0], err)
	}
	log := tasks.Logger(ctx)
	log.Info("command started", slog.String("program", c.argv[0]), slog.Int("pid", cmd.Process.Pid))
	tail := pipes.read(ctx, log)
	stopped, waitErr := c.wait(ctx, cmd)
	pipes.finish()
	log.Info("command exited", slog.String("program", c.argv[0]), slog.String("state", cmd.ProcessState.String()))

	var ee *exec.ExitError
	switch {
	case stopped:
		return fmt.Errorf("%s stopped: %w", c.argv[0], context.Cause(ctx))
	case errors.As(waitErr, &ee):
		err := &ExitError{Program: c.argv[0], Code: ee.ExitCode(), State: ee.String(), Stderr: tail.lines()}
		if err.Code == ExitPermanent {
			return tasks.Permanent(err)
		}
		return err
	case waitErr != nil:
		return fmt.Errorf("%s: %w", c.argv[0], waitErr)
	}
	return read(outPath)
}

// wait returns when the program's process group is gone. When ctx ends
// first the group gets SIGTERM, then SIGKILL after the grace period (or as
// soon as it is empty); stopped reports that. A program that exits by
// itself takes what is left of its group with it: no process of a command
// task outlives its attempt.
func (c *command) wait(ctx context.Context, cmd *exec.Cmd) (stopped bool, err error) {
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		killGroup(cmd)
		return false, err
	case <-ctx.Done():
	}
	signalGroup(cmd, true)
	grace := time.NewTimer(c.grace)
	defer grace.Stop()
	select {
	case err = <-exited:
		// The leader is gone; what it started gets the rest of the grace.
		awaitGroup(cmd, grace.C)
	case <-grace.C:
	}
	killGroup(cmd)
	if err == nil {
		err = <-exited
	}
	return true, err
}

// environ is the program's environment: taskgate's own less TASKGATE_*,
// unbuffered Python (so that lines reach the logs as they are printed),
// Options.Env, then the devices and the protocol.
func (c *command) environ(ri tasks.RunInfo, in, out string, progress bool) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TASKGATE_") {
			env = append(env, kv)
		}
	}
	env = append(env, "PYTHONUNBUFFERED=1")
	env = append(env, c.env...)
	env = append(env, tasks.DeviceEnv(ri.Devices)...)
	env = append(env, EnvInputs+"="+in, EnvOutputs+"="+out, EnvRun+"="+ri.Name, EnvAttempt+"="+strconv.Itoa(ri.Attempt))
	if progress {
		env = append(env, EnvProgress+"="+progressPath)
	}
	return env
}

// startError is a failed start: a program that is missing or may not be
// executed fails for good; anything else (a process limit) may pass.
func startError(program string, err error) error {
	err = fmt.Errorf("start %s: %w", program, err)
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return tasks.Permanent(err)
	}
	return err
}

// ExitError is a program that exited with a non-zero code, or was killed
// by a signal. With Code ExitPermanent it comes wrapped in
// tasks.Permanent.
type ExitError struct {
	Program string
	// Code is the exit code, -1 when a signal ended the program.
	Code int
	// State is how the program ended: "exit status 2", "signal: killed".
	State string
	// Stderr holds the last lines of the program's stderr.
	Stderr []string
}

func (e *ExitError) Error() string {
	msg := e.Program + ": " + e.State
	if e.Code == ExitPermanent {
		msg += " (do not retry)"
	}
	if len(e.Stderr) > 0 {
		msg += "; stderr ends with:\n" + strings.Join(e.Stderr, "\n")
	}
	return msg
}
