package environments

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humachi"

	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/tasks"
)

// inFlightLimiter is implemented by environments that apply
// Limits.MaxInFlight themselves, around the user's code only; Wrap then
// leaves the limit out instead of counting every route of the environment
// a second time.
type inFlightLimiter interface{ appliesMaxInFlight() bool }

// appliesMaxInFlight implements inFlightLimiter: the app's operations and
// Handler are limited in Build, and the queue's replays share that limit.
func (a *AppEnvironment) appliesMaxInFlight() bool { return true }

// healthPath is never counted against max_inputs: a health check must
// answer while the app is busy, or the instance looks dead under load.
const healthPath = "/health"

// appLimit is an AppEnvironment's max_inputs: one middleware.Limiter for
// the requests its app serves directly and the replays of its queue, held
// around the app's own code only, not around /health, the docs, the OpenAPI
// documents or the queue routes. A nil *appLimit limits nothing.
type appLimit struct {
	lim    *middleware.Limiter
	direct func(http.Handler) http.Handler // lim.Middleware()
}

// newAppLimit returns the limit of l, or nil when l.MaxInFlight is zero.
// l must be valid (Settings.validate).
func newAppLimit(l Limits) *appLimit {
	if l.MaxInFlight == 0 {
		return nil
	}
	lim := middleware.NewLimiter(l.MaxInFlight, l.QueueTimeout)
	return &appLimit{lim: lim, direct: lim.Middleware()}
}

// slotKey marks the context of a replayed request that holds a slot of the
// *appLimit it names, so that the app's handlers do not take a second one.
type slotKey struct{}

// holds reports whether ctx already holds a slot of al.
func (al *appLimit) holds(ctx context.Context) bool {
	held, _ := ctx.Value(slotKey{}).(*appLimit)
	return held == al
}

// acquire takes a slot for a replay, waiting as long as ctx allows: the
// request is queued durably, so it waits for its turn rather than being
// refused. The returned ctx carries the slot to the app's handlers.
func (al *appLimit) acquire(ctx context.Context) (context.Context, func(), error) {
	if al == nil {
		return ctx, func() {}, nil
	}
	release, ok := al.lim.TryAcquire()
	if !ok {
		tasks.Logger(ctx).InfoContext(ctx, "waiting for an in-flight slot", "max_in_flight", al.lim.Limit())
		var err error
		if release, err = al.lim.Acquire(ctx); err != nil {
			return ctx, nil, err
		}
	}
	return context.WithValue(ctx, slotKey{}, al), release, nil
}

// handler limits h, the user's Handler, except at /health and for a replay
// that already holds its slot.
func (al *appLimit) handler(h http.Handler) http.Handler {
	if al == nil {
		return h
	}
	limited := middleware.ExceptPaths([]string{healthPath}, al.direct)(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if al.holds(r.Context()) {
			h.ServeHTTP(w, r)
			return
		}
		limited.ServeHTTP(w, r)
	})
}

// operation is handler as a huma middleware, for the app's operations.
func (al *appLimit) operation(ctx huma.Context, next func(huma.Context)) {
	if ctx.Operation().Path == healthPath || al.holds(ctx.Context()) {
		next(ctx)
		return
	}
	r, w := humachi.Unwrap(ctx)
	al.direct(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { next(ctx) })).ServeHTTP(w, r)
}
