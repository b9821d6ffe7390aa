package environments

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/taskgate/taskgate/tasks"
)

// Queue puts an AppEnvironment's routes behind queue routes
// (AppConfig.Queue): a request is stored, run later through the
// scheduler, and its response fetched later. Package environments/queue
// implements it, fal's queue: queue.New(queue.Config{…}).
//
// This interface is the seam between the two packages: the core hands the
// queue what it needs at each Build and never imports it, and the queue
// imports the core for its Settings and Deps only.
type Queue interface {
	// Mount adds the queue's routes to m.API and what its replays need to
	// m.Deps. It is called at every Build of the environment, after the
	// app's own operations are registered; one Queue serves one
	// environment.
	Mount(m *QueueMount) error
}

// QueueMount is what an AppEnvironment gives its Queue at Build.
type QueueMount struct {
	// Settings are the environment's.
	Settings *Settings
	// Resources are AppConfig.Resources: replays run under them.
	Resources tasks.Resources
	// Deps are the App's, as the environment got them.
	Deps *Deps
	// API is the environment's huma API, whose routes are served outside
	// the app's in-flight limit.
	API huma.API
	// App serves a replayed request as it would serve it directly: the
	// environment's router, without auth.
	App http.Handler
	// Acquire takes a slot of the environment's in-flight limit
	// (Limits.MaxInFlight) for a replay, waiting as long as ctx allows: the
	// request is queued durably, so it waits for its turn rather than being
	// refused. The returned context carries the slot to the app's
	// handlers, which then take no other; release gives it back.
	Acquire func(ctx context.Context) (_ context.Context, release func(), _ error)
}

// QueueProject is the project of every queue's replay tasks; the domain
// is the environment's name. Those tasks are internal: no webhook
// environment's allowlist reaches them, since their inputs would let a
// caller forge a replayed request.
const QueueProject = "taskgate-queue"
