// Package callback delivers taskgate's outgoing webhook callbacks: signed
// per the Standard Webhooks specification, retried from a durable outbox,
// and unable to reach addresses a caller must not reach.
//
// # What is sent
//
// A run submitted with a webhook URL gets a POST when it starts running
// (event "start") and/or when it reaches a terminal phase ("completed", the
// default), as Replicate's webhook_events_filter selects (ParseEvents). The
// body is a Payload, {"type": "run.completed", "sequence": 2, "timestamp":
// …, "data": <the run>}, with three headers:
//
//	webhook-id:        msg_…  the outbox entry's id: the same on every retry
//	webhook-timestamp: 1614265330   fresh on every attempt
//	webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body> [v1,… while a secret rotates]
//
// Receivers verify them with middleware.VerifyWebhook.
//
// # Delivery
//
// The store enqueues a delivery in the same transaction as the phase change
// that causes it, so a callback is never lost between the two. A Worker
// claims due deliveries, makes one attempt each with a Deliverer and records
// every attempt (time, status, error) on the run. Only a 2xx answer
// delivers; 410 Gone, an invalid URL or a refused address end the delivery;
// anything else is retried on the plan (DefaultSchedule: 5 s, 5 min, 30 min,
// 2 h, 5 h, 10 h, 10 h, with jitter), later if the receiver's Retry-After
// asks for it. Delivery is at least once: receivers deduplicate on
// webhook-id. A run's callbacks are delivered in order: the next waits
// until the previous one was delivered or given up, and "sequence" numbers
// them within the run (1, 2, …). Callbacks of different runs do not wait
// for each other.
//
// One loop claims deliveries and starts them, at most
// WorkerConfig.Concurrency at once (64) and WorkerConfig.PerHost per
// receiver (16), so a slow receiver cannot hold up the others: its surplus
// is postponed at its observed pace, with no attempt spent. One writer
// records finished attempts in group commits (store.RecordDeliveries) that
// also carry the loop's next claim: one transaction, one fsync, for many
// deliveries.
//
//	d, err := callback.New(callback.Config{Secrets: []stdwebhook.Secret{secret}})
//	// handle err
//	w, err := callback.NewWorker(d, st, callback.WorkerConfig{}) // st is a store.Store
//	// handle err
//	go w.Run(ctx)
//
// # SSRF guard
//
// The client (NewClient) checks every address at connection time, after DNS
// resolution, so that a name that resolves to a public address when the URL
// is given and to 127.0.0.1 when it is called (DNS rebinding) is still
// refused. Refused: loopback, private, link-local (169.254.169.254 cloud
// metadata included), CGNAT, unspecified, multicast, broadcast, reserved and
// documentation ranges, and their IPv6 forms (::1, fc00::/7, fe80::/10,
// IPv4-mapped, NAT64 and 6to4 addresses embedding any of them); only http
// and https; no proxy; no redirects; a 10 s timeout; a bounded read of the
// response. Config.AllowPrivate (TASKGATE_WEBHOOK_ALLOW_PRIVATE=1) lifts the
// guard for local development and tests.
//
// # Place on the data path
//
// request → auth → environment → dispatcher → scheduler → node agent →
// store → callbacks: callback is the last step. Its Worker drains the outbox
// that the store fills in the transaction of each phase change, so it learns
// of work through tasks/store alone. It must not import the dispatcher, nor,
// like everything under tasks/, middleware (the receiver's
// middleware.VerifyWebhook is the other end; only a test uses it),
// environments or framework.
package callback
