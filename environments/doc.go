// Package environments holds what an App serves.
//
//   - Webhook is the prebuilt webhook environment (Flyte's
//     FlyteWebhookAppEnvironment): endpoint groups core, task, run and nodes,
//     a task allowlist, run-task with Prefer: wait, Idempotency-Key and signed
//     callbacks, runs visible only to their owner and the admin group.
//   - AppEnvironment mounts your own chi router or huma operations behind the
//     same passthrough auth (Flyte's FastAPIAppEnvironment); Endpoint turns a
//     typed Go function into a documented operation (Modal's
//     fastapi_endpoint); Submit starts a task as the calling user; a queue
//     setting puts any route behind fal-style queue routes.
//   - ServerEnvironment starts a process and reverse-proxies to its port
//     (Modal's web_server), WebSockets and streaming included.
//
// Every environment has Settings: a name, a path prefix, a URL label and
// custom domains (Modal's URL rules: see Subdomain), auth settings and
// limits (max in flight, a rate per identity, a body size).
//
// At the edge (edge.go, problems.go) every environment's API takes JSON
// bodies in UTF-8 only (415 otherwise), refuses with a 422 naming the
// field any text it would store that is not valid UTF-8 without NUL, echoes
// at most a short prefix of a rejected value, and answers a 500 with the
// request id alone, logging the error under that id.
//
//	wh := environments.MustWebhook(environments.WebhookConfig{
//		Settings:     environments.Settings{Name: "team-a", PathPrefix: "/team-a"},
//		Groups:       []string{environments.GroupCore, environments.GroupTask, environments.GroupRun},
//		AllowedTasks: []string{"team-a/*/*", "shared/prod/embed"},
//	})
package environments
