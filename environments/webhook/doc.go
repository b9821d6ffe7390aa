// Package webhook is the prebuilt webhook environment (Flyte's
// FlyteWebhookAppEnvironment): endpoint groups core (/health, /me), task
// (/tasks, /task/…, /run-task/…), run (/run/…, /runs) and nodes (/nodes,
// /queue for the admin group), a task allowlist, run-task with Prefer:
// wait, Idempotency-Key and signed callbacks, and runs visible only to
// their owner and the admin group. Where it serves runs it also serves a
// web console at /console (environments/internal/console), unless
// Config.NoConsole or Deps.NoConsole turns it off.
//
//	wh := webhook.MustNew(webhook.Config{
//		Settings:     environments.Settings{Name: "team-a", PathPrefix: "/team-a"},
//		Groups:       []string{webhook.GroupCore, webhook.GroupTask, webhook.GroupRun},
//		AllowedTasks: []string{"team-a/*/*", "shared/prod/embed"},
//	})
//
// On the data path it is the environment: request → auth and limits
// (environments.Wrap, middleware) → webhook → dispatcher → scheduler →
// node agent → store → callbacks. Its handlers' inputs and outputs are
// the schemas of the committed OpenAPI documents (openapi/), so their type
// names are part of the API. It must not import the other environment
// kinds (queue, server), nor the framework that wires it.
package webhook
