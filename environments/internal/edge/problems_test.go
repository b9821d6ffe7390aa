package edge_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"github.com/taskgate/taskgate/environments/internal/edge"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/store"
)

// TestProblem checks the one table: each domain error, wrapped as the
// routes wrap it, gets its status, and the routes' words.
func TestProblem(t *testing.T) {
	t.Parallel()
	runs := edge.Routes{Noun: "run"}
	gone := huma.NewError(http.StatusBadRequest, "the request already completed")
	requests := edge.Routes{Noun: "request", AlreadyDone: gone}
	tests := []struct {
		err    error
		routes edge.Routes
		status int
		detail string
	}{
		{dispatch.ErrNotFound, runs, http.StatusNotFound, "run not found"},
		{dispatch.ErrNotFound, requests, http.StatusNotFound, "request not found"},
		{dispatch.ErrIdempotencyConflict, runs, http.StatusConflict, "Idempotency-Key was already used with a different request"},
		{dispatch.ErrAlreadyDone, runs, http.StatusConflict, "run already finished"},
		{dispatch.ErrAlreadyDone, requests, http.StatusBadRequest, "the request already completed"},
		{dispatch.ErrBadCursor, runs, http.StatusUnprocessableEntity, "invalid cursor"},
		{&dispatch.TextError{Field: "inputs", Where: ".message"}, runs, http.StatusUnprocessableEntity, "validation failed"},
		{dispatch.ErrClosed, runs, http.StatusServiceUnavailable, "server is shutting down"},
		{fmt.Errorf("%w: %w", store.ErrUnavailable, store.ErrDiskFull), runs, http.StatusInsufficientStorage, "the server's storage is full; try again later"},
		{store.ErrUnavailable, requests, http.StatusServiceUnavailable, "the server's database is unavailable; try again later"},
		{context.Canceled, runs, http.StatusServiceUnavailable, "request cancelled"},
		{context.DeadlineExceeded, requests, http.StatusServiceUnavailable, "request cancelled"},
		{errors.New("disk on fire"), runs, http.StatusInternalServerError, "internal error"},
	}
	for _, tt := range tests {
		got := edge.Problem(fmt.Errorf("wrapped: %w", tt.err), tt.routes)
		var se huma.StatusError
		if !errors.As(got, &se) || se.GetStatus() != tt.status {
			t.Errorf("Problem(%v, %s) = %v, want status %d", tt.err, tt.routes.Noun, got, tt.status)
			continue
		}
		var m *huma.ErrorModel
		if errors.As(got, &m) && m.Detail != tt.detail {
			t.Errorf("Problem(%v, %s) detail %q, want %q", tt.err, tt.routes.Noun, m.Detail, tt.detail)
		}
	}
}
