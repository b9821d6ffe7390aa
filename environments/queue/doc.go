// Package queue puts an app environment's routes behind fal-style queue
// routes: POST /queue/submit/{path...} stores a request durably and answers
// 202 with the URLs to follow it; GET /queue/requests/{id}/status (and
// /status/stream) follows it, GET /queue/requests/{id} returns the
// recorded response, PUT /queue/requests/{id}/cancel cancels it. Each
// queued request is a run of an internal replay task, scheduled under the
// app's resources, and replayed in process through the app's own handler
// as the caller who submitted it (see Config).
//
// The same routes answer in fal's own layout under /fal, and /fal is the
// proxy of fal's JS client, so that fal's clients work unchanged (fal.go):
// fal.config({credentials, proxyUrl: {url: "https://host/gen/fal", when:
// "always"}}). make fal-client runs that client, unmodified, against
// examples/fal-queue (internal/falclient).
//
//	env := environments.MustAppEnvironment(environments.AppConfig{
//		Settings:  environments.Settings{Name: "gen", PathPrefix: "/gen"},
//		Handler:   router,
//		Resources: tasks.Resources{GPU: "A100:1"},
//		Queue:     queue.MustNew(queue.Config{MaxResponseBytes: 256 << 10}),
//	})
//
// On the data path it sits inside an app environment: request → auth →
// environment → queue → dispatcher → scheduler → node agent → replay
// through the app. It implements environments.Queue, the seam through
// which the core hands it the environment's settings, handler, API and
// in-flight limit at Build, so that the core never imports it. It must
// not import the other environment kinds (webhook, server), nor the
// framework that wires it.
package queue
