package framework

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/internal/problem"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/store"
)

// readyTimeout bounds the store's ping of a readiness probe: a probe
// that hangs tells a load balancer less than a prompt 503.
const readyTimeout = 2 * time.Second

// ready answers GET and HEAD /ready, without credentials, for a load
// balancer's readiness probe: 200 {"status":"ready"} while this process
// takes work, else 503 problem+json whose detail says why not:
// "draining", "starting" or "store unreachable: …". (/health, served by
// the environments, only says that the process answers.)
func (a *App) ready(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if reason := a.notReady(r); reason != "" {
		w.Header().Set("Retry-After", "1")
		problem.Write(w, r, http.StatusServiceUnavailable, reason)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"status":"ready"}`+"\n")
}

// notReady says why this process takes no work now; "" when it does.
func (a *App) notReady(r *http.Request) string {
	if a.phase.Load() != serving {
		return "draining"
	}
	for _, e := range a.Environments {
		if rd, ok := e.(environments.Readier); ok {
			if why := rd.NotReady(); why != "" {
				return "environment " + e.Settings().Name + ": " + why
			}
		}
	}
	if a.Dispatcher == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	err := a.Dispatcher.Ready(ctx)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, dispatch.ErrDraining):
		return "draining"
	case errors.Is(err, dispatch.ErrNotStarted):
		return "starting"
	}
	// The store's error may name hosts and users: it goes to the log, and
	// the caller gets its kind and the request id.
	id := chimw.GetReqID(r.Context())
	a.Logger.WarnContext(r.Context(), "readiness: store unreachable", "err", err, "request_id", id)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "store unreachable: no answer within " + readyTimeout.String()
	case errors.Is(err, store.ErrClosed):
		return "store unreachable: closed"
	}
	return "store unreachable: see the server log (request id " + id + ")"
}
