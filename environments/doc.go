// Package environments holds what an App serves and what every kind of
// environment shares.
//
//   - Environment is the interface of every kind; Settings are what each
//     has: a name, a path prefix, a URL label and custom domains (Modal's
//     URL rules: see Subdomain), auth settings and limits (max in flight,
//     a rate per identity, a body size). Wrap puts the passthrough auth
//     and the limits in front of an environment's handler; HostRouter
//     picks the environment of a request by its Host.
//   - AppEnvironment mounts your own chi router or huma operations behind
//     the same passthrough auth (Flyte's FastAPIAppEnvironment); Endpoint
//     turns a typed Go function into a documented operation (Modal's
//     fastapi_endpoint); Submit starts a task as the calling user.
//   - Holder is the seam through which an environment holds resources (a
//     GPU) for as long as it serves: each replica a long-lived run of the
//     environment's system task, placed by the App's scheduler; framework
//     implements it over the dispatcher. A server (environments/server)
//     with Resources or Replicas and an AppEnvironment with
//     AppConfig.Hold use it, and tell the App's /ready why they wait
//     (Readier).
//
// The other kinds live in subpackages, each beside this core and none
// importing another: environments/webhook is the prebuilt webhook
// environment (Flyte's FlyteWebhookAppEnvironment), environments/server a
// proxied server (Modal's web_server), and environments/queue puts an app
// environment's routes behind fal-style queue routes.
//
// The queue is part of an app environment (AppConfig.Queue), yet the core
// does not import it: the core defines the Queue interface and, at each
// Build, hands the queue a QueueMount with what it needs (the settings,
// the App's Deps, the environment's API and router, a slot of its
// in-flight limit). The queue package imports the core for these types
// only. So the core compiles without the queue, a queue's internals stay
// its own, and the seam is one small interface rather than shared state.
//
// At the edge (environments/internal/edge) every environment's API takes
// JSON bodies in UTF-8 only (415 otherwise), refuses with a 422 naming the
// field any text it would store that is not valid UTF-8 without NUL,
// echoes at most a short prefix of a rejected value, and answers a 500
// with the request id alone, logging the error under that id. One table
// there maps the dispatcher's and the store's errors to HTTP problems for
// every environment.
//
// On the data path this package is the environment: request → auth
// (middleware, put in front by Wrap) → environment → dispatcher. It
// imports middleware and tasks below it, never framework above it nor its
// own subpackages (.golangci.yml's depguard enforces both).
//
//	app := environments.MustAppEnvironment(environments.AppConfig{
//		Settings:  environments.Settings{Name: "gen", PathPrefix: "/gen"},
//		Handler:   router,
//		Resources: tasks.Resources{GPU: "A100:1"},
//		Queue:     queue.MustNew(queue.Config{}),
//	})
//	environments.Endpoint(app, "square", square, nil)
package environments
