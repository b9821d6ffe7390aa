// Package tasks defines typed tasks, their registry, their resource needs
// (CPU, memory, GPUs with MIG partitions and fallback lists), retry and
// timeout policies, and the context a task function runs in.
//
//	echo := tasks.MustDefine("demo", "development", "echo",
//		func(ctx context.Context, in EchoIn) (EchoOut, error) {
//			return EchoOut{Message: in.Message}, nil
//		}, &tasks.Options{Resources: tasks.Resources{CPU: "500m", GPU: "A100:1"}})
//	reg := tasks.NewRegistry()
//	reg.MustRegister(echo)
//
// Runs are submitted, placed and executed by package tasks/dispatch. A
// running task reads its run from the context (RunInfoFromContext, Devices,
// Logger) and reports how far it has come with Progress, which reaches the
// reporter the runtime installed (WithProgressReporter). A task whose body
// is a program is declared with tasks/taskexec.DefineCommand.
//
// On the data path (request → auth → environment → dispatcher → scheduler →
// node agent → store → callbacks) package tasks is the vocabulary of every
// step after the environment: the definitions it submits, the resources the
// scheduler matches, the RunInfo the node agent gives a task function. The
// scheduler imports it, so it stays as pure: no net/http and no os/exec
// (subprocesses are tasks/taskexec), and nothing of middleware (but
// middleware/identity), environments or framework.
package tasks
