// Command gpu-python serves a Python script as a task on the run's GPU:
// demo/development/bench, a command task (taskexec.DefineCommand) that
// runs bench.py, a PyTorch matmul benchmark reporting the device's name
// and TFLOP/s. The task asks for one whole GPU of any type, else a
// 3g.40gb MIG partition of an H100 or an A100-80GB.
//
// It also serves infer_server.py at /infer, a GPU-backed proxied server
// (server.Config with Resources): one replica that holds one GPU (same
// fallbacks) through the scheduler for as long as it runs, and answers
// POST /infer/infer with a bf16 model's timing on it. Without torch it
// answers 503 with the reason.
//
// bench.py, infer_server.py and taskgate_task.py (the protocol in three calls, a file to
// copy beside a script) are embedded, and unpacked into a private
// directory at start. Configuration comes from the quickstart's TASKGATE_*
// variables; -python (or $PYTHON) names the interpreter, python3 by default.
//
//	go run ./examples/gpu-python                       # serve the webhook
//	go run ./examples/gpu-python -once '{"size":8192}' # one run, printed
//	go run ./examples/gpu-python -server-once '{}'     # the server, one request, a task waiting for its GPU
//
// Without torch, or without a GPU that torch sees, the run fails at once
// with exit code 3 ("do not retry") and says which; on a node with no GPU
// it waits for one, and GET /run gives the reason.
//
// It is the whole data path (request → auth → environment → dispatcher →
// scheduler → node agent → store → callbacks) in one program, with a
// Python program as the task. As an example it uses only public packages,
// never internal/; library code must not import examples (make lint).
package main
