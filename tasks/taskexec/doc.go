// Package taskexec runs programs for tasks. On the data path (request →
// auth → environment → dispatcher → scheduler → node agent → store →
// callbacks) it is used inside a task that the node agent runs, and gives
// a program only the devices the scheduler bound to the run.
//
// Command is exec.CommandContext for a Go task function that starts a
// subprocess itself:
//
//	cmd := taskexec.Command(ctx, "python", "train.py") // CUDA_VISIBLE_DEVICES=the run's GPUs
//	out, err := cmd.Output()
//
// Run runs such a command with its stdout and stderr, where unset, kept in
// the run's logs line by line (stream stdout and stderr in GET
// /run/{name}/logs), cut like a command task's:
//
//	err := taskexec.Run(ctx, taskexec.Command(ctx, "python", "prepare.py"))
//
// DefineCommand declares a task whose body is a program, typically a
// Python script:
//
//	var Bench = taskexec.MustDefineCommand[BenchIn, BenchOut]("ml", "prod", "bench",
//		[]string{"python3", "/srv/bench.py"},
//		&taskexec.Options{Options: tasks.Options{Resources: tasks.Resources{GPU: "H100:1"}}})
//
// # The protocol of a command task
//
// Each attempt runs the program in a new working directory (mode 0700,
// removed afterwards), in a process group of its own, with:
//
//   - the inputs, the JSON of I, on stdin and in the file named by
//     TASKGATE_INPUTS;
//   - the run's devices in CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES
//     (none: "" and "void"), the run's name in TASKGATE_RUN and the attempt
//     number (from 1) in TASKGATE_ATTEMPT; the rest of the environment is
//     taskgate's own less its TASKGATE_* variables, with
//     PYTHONUNBUFFERED=1, then Options.Env;
//   - stdout and stderr kept line by line in the run's logs with the
//     attribute stream=stdout or stream=stderr (a line past 16 KiB is cut,
//     and says so);
//   - on Linux and macOS, a progress pipe named by TASKGATE_PROGRESS
//     (/dev/fd/3): one JSON object per line, {"done":3,"total":10,
//     "message":"epoch 3"} (total 0 or absent when unknown), each fed to
//     tasks.Progress. A line that is not one is logged and ignored.
//     TASKGATE_PROGRESS is unset on Windows.
//
// The program writes its outputs, the JSON of O, to the file named by
// TASKGATE_OUTPUTS. After exit code 0 that file must hold valid JSON that
// matches O's schema (the output_schema of GET /task) with no unknown
// field; otherwise the run fails for good, naming the file and the fault.
// Only when O is a struct with no fields may the file be missing.
//
// Exit code ExitPermanent (3) fails the run at once, whatever its retry
// policy ("no torch here", "bad input"); any other non-zero code, or a
// signal, fails the attempt with the code and the last lines of stderr,
// and the retry policy decides on another. When the run is aborted or
// times out the whole group gets SIGTERM, then SIGKILL after
// Options.GracePeriod (10 s); when the program exits, whatever it left in
// its group is killed. A process that leaves the group (setsid) escapes
// both. examples/gpu-python ships taskgate_task.py, a file to copy beside
// a script, that speaks the protocol in three calls.
//
// The package is kept out of package tasks so that tasks, and the
// scheduler that imports it, stay free of os/exec. It imports tasks, huma
// (for O's schema) and the standard library; it must not import the
// dispatcher, a store or any HTTP layer, nor, like everything under tasks/,
// middleware, environments or framework.
package taskexec
