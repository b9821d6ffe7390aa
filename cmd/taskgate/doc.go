// Command taskgate runs tasks on a taskgate service from the command line:
// it starts runs and follows them, lists and aborts them, and shows the
// tasks, nodes and queue. It is built on the Go client (package client).
//
//	taskgate login                      # stores a token for TASKGATE_URL
//	taskgate run demo/development/echo -d '{"message":"hi"}' --wait
//	taskgate runs --phase failed
//	taskgate get r7q2m4x9k3p8s1t6v5w0 -o json
//
// The server is TASKGATE_URL (or --url; default http://127.0.0.1:8080),
// the token TASKGATE_TOKEN (or --token), else the one `taskgate login`
// stored in the user's configuration folder
// (os.UserConfigDir()/taskgate/credentials.json, mode 0600).
//
// Exit codes: 0 success (for `run --wait`, the run succeeded); 1 the run
// failed, was aborted or timed out; 2 a usage error (bad flags,
// arguments, or -d that is not JSON); 3 the API refused the request or
// could not be reached; 130 interrupted (Ctrl-C: the run goes on).
//
// It stands in front of the data path (request → auth → environment →
// dispatcher → scheduler → node agent → store → callbacks) as the caller.
// It imports package client and the task definitions only, never the
// server's packages.
package main
