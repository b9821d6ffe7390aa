// Command fal-queue is an app environment with a queue, in the shape of a
// fal app, that fal's own JS client (@fal-ai/client) drives unchanged
// through its proxy option:
//
//	fal.config({ credentials: TOKEN, proxyUrl: { url: "http://127.0.0.1:8080/gen/fal", when: "always" } })
//	const { data } = await fal.subscribe("my-team/gen/echo", { input: { prompt: "a cat" } })
//
// The app's routes, under /gen, queued with fal.queue.submit or
// fal.subscribe and replayed as the caller who submitted them:
//
//	POST /echo   {"prompt": "..."} → {"prompt", "subject"}; without a
//	             prompt a 422 in FastAPI's shape, as fal's apps answer
//	POST /slow   {"seconds": n} waits n seconds (at most 60), or until
//	             cancelled
//
// Configuration comes from the TASKGATE_* variables of the quickstart;
// without tokens or OIDC a development token is printed.
//
//	go run ./examples/fal-queue
//
// internal/falclient runs fal's client against it (make fal-client). As an
// example it uses only public packages.
package main
