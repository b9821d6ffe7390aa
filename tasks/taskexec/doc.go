// Package taskexec starts the subprocesses of a task function.
// On the data path (request → auth → environment → dispatcher → scheduler
// → node agent → store → callbacks) it is used inside a task that the node
// agent runs: Command gives the child only the devices the scheduler bound
// to the run.
//
//	cmd := taskexec.Command(ctx, "python", "train.py") // CUDA_VISIBLE_DEVICES=the run's GPUs
//	out, err := cmd.Output()
//
// It is kept out of package tasks so that tasks, and the scheduler that
// imports it, stay free of os/exec. It imports only tasks and the standard
// library; it must not import the dispatcher, a store or any HTTP layer,
// nor, like everything under tasks/, middleware, environments or framework.
package taskexec
