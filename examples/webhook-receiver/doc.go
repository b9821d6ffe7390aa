// Command webhook-receiver is a small receiver for taskgate's signed run
// callbacks: it verifies each POST with middleware.VerifyWebhook, drops
// repeats of a webhook-id (delivery is at least once), and logs the run.
//
// Run it beside the quickstart, sharing the signing secret:
//
//	export TASKGATE_WEBHOOK_SECRET=whsec_…   # the secret taskgate signs with
//	go run ./examples/webhook-receiver        # listens on 127.0.0.1:9090
//
//	# in the quickstart's shell (callbacks to loopback need the guard lifted):
//	TASKGATE_WEBHOOK_ALLOW_PRIVATE=1 make run
//	curl -X POST "http://127.0.0.1:8080/run-task/demo/development/echo?webhook=http://127.0.0.1:9090/callbacks" \
//	  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"message":"hi"}'
//
// Settings:
//
//	TASKGATE_WEBHOOK_SECRET   whsec_ secret(s), comma-separated while one rotates (required)
//	WEBHOOK_RECEIVER_ADDR     listen address (default 127.0.0.1:9090)
//
// It sits past the end of the data path (request → auth → environment →
// dispatcher → scheduler → node agent → store → callbacks): the receiver
// the callbacks step posts to. As an example it uses only public packages
// (middleware), never internal/; library code must not import examples
// (make lint).
package main
