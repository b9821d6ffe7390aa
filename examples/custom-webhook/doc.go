// Command custom-webhook mirrors Flyte's "custom FastAPI app with
// passthrough auth" tutorial: an application of your own, served behind the
// same auth as the prebuilt webhook, that runs a task on behalf of whoever
// calls it.
//
//	GET  /health                open: {"status":"ok"}
//	POST /run-my-task           runs demo/development/echo as the caller and
//	                            answers {run_id, url}
//	/docs                       the app's operations (run-my-task)
//	/webhook/...                a restricted prebuilt webhook environment
//	                            (core, task and run groups; only demo/echo),
//	                            where the caller follows the run at url
//
// The run belongs to the caller: it is in their GET /webhook/runs, and any
// other caller gets 404 for it. Configuration comes from the TASKGATE_*
// variables of the quickstart; without tokens or OIDC a development token
// is printed.
//
//	go run ./examples/custom-webhook
//	curl -s -X POST localhost:8080/run-my-task -H "Authorization: Bearer $TOKEN" \
//	  -H 'Content-Type: application/json' -d '{"message":"hi"}'
//
// It is the whole data path (request → auth → environment → dispatcher →
// scheduler → node agent → store → callbacks) in one program, with an
// environment of its own in front. As an example it uses only public
// packages and the quickstart's demo, never internal/; library code must not
// import examples (make lint).
package main
