package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/taskgate/taskgate/internal/problem"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/store"
)

// What an error becomes on the way out: the one table from the errors of
// the dispatcher and the store to HTTP problems (Problem), and the
// transformer every environment's API writes its error bodies through
// (ErrorBodies).

// Routes says how Problem words its answers for one family of routes,
// where they follow different things.
type Routes struct {
	// Noun is what the routes follow: "run" (the webhook environment),
	// "request" (a queue).
	Noun string
	// AlreadyDone answers a change to one that already finished; nil is
	// 409 "<Noun> already finished".
	AlreadyDone error
}

// Problem is the one table from domain errors to HTTP errors, for every
// environment's routes. An error it does not know is a 500 whose text
// ErrorBodies logs, never shows.
func Problem(err error, r Routes) error {
	switch {
	case errors.Is(err, dispatch.ErrNotFound):
		return huma.Error404NotFound(r.Noun + " not found")
	case errors.Is(err, dispatch.ErrIdempotencyConflict):
		return huma.Error409Conflict("Idempotency-Key was already used with a different request")
	case errors.Is(err, dispatch.ErrAlreadyDone):
		if r.AlreadyDone != nil {
			return r.AlreadyDone
		}
		return huma.Error409Conflict(r.Noun + " already finished")
	case errors.Is(err, dispatch.ErrBadCursor):
		return huma.Error422UnprocessableEntity("invalid cursor", &huma.ErrorDetail{
			Message: "not a next_cursor of GET /runs", Location: "query.cursor",
		})
	case errors.Is(err, dispatch.ErrInvalidText):
		return TextErrorProblem(err)
	case errors.Is(err, dispatch.ErrClosed):
		return ShuttingDown()
	case errors.Is(err, store.ErrUnavailable):
		return storeProblem(err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return huma.Error503ServiceUnavailable("request cancelled")
	}
	// ErrorBodies logs err with the request id and answers without it.
	return huma.Error500InternalServerError("internal error", err)
}

// TextErrorProblem is a *dispatch.TextError as a 422 naming the field or
// the place in the inputs ("inputs.message", "webhook"); the TextError
// stays in the chain, so that a function endpoint that returns
// environments.Submit's error answers the caller 422 and its own code can
// still match it. Other errors pass unchanged.
func TextErrorProblem(err error) error {
	var te *dispatch.TextError
	if !errors.As(err, &te) {
		return err
	}
	return errors.Join(TextProblem(te.Field+te.Where), err)
}

// ShuttingDown is the 503 of a state change the dispatcher refuses while
// its process drains its runs: the client may retry at once, and a load
// balancer sends the retry to a process that takes work.
func ShuttingDown() error {
	return huma.ErrorWithHeaders(huma.Error503ServiceUnavailable("server is shutting down"),
		http.Header{"Retry-After": {"1"}})
}

// Retry-After of the answers to requests the store could not serve: a
// full disk needs an operator, anything else (a lost connection) passes
// sooner.
const (
	diskFullRetryAfter    = "30"
	unavailableRetryAfter = "5"
)

// storeProblem answers a request that failed because the store did (err
// matches store.ErrUnavailable): 507 Insufficient Storage for a full disk,
// 503 otherwise, both with Retry-After, since the same request may succeed
// later. The store's loops log the failure; the requests do not.
func storeProblem(err error) error {
	if errors.Is(err, store.ErrDiskFull) {
		return huma.ErrorWithHeaders(huma.NewError(http.StatusInsufficientStorage, "the server's storage is full; try again later"),
			http.Header{"Retry-After": {diskFullRetryAfter}})
	}
	return huma.ErrorWithHeaders(huma.Error503ServiceUnavailable("the server's database is unavailable; try again later"),
		http.Header{"Retry-After": {unavailableRetryAfter}})
}

// Recorded is implemented by an error body that is the recorded outcome of
// earlier work, not an error of this request: a queued request's failure,
// whose 500 its owner sees in GET status too. ErrorBodies passes it as it
// is.
type Recorded interface{ RecordedOutcome() }

// Bounds on what an error body echoes of the request: a value rejected by
// validation, the place it was at (a body's property names are the
// client's), and the messages. A 9 MiB unknown property must not come back
// as a 9 MiB 422.
const (
	maxEchoedValue  = 128
	maxEchoedPlace  = 256
	maxEchoedText   = 512
	maxErrorDetails = 20
)

// ErrorBodies is the transformer of every response body an environment's
// huma API writes; it changes only errors. A 500 says nothing of its error
// but the request id, and the error goes to the log with that id: its
// text (a wrapped driver error, a function endpoint's own) may hold
// secrets. Other errors keep what they say, each echoed value, place and
// message cut to a short prefix, and at most maxErrorDetails details.
//
// A Recorded body passes unchanged.
//
// Every error body, Recorded or not, is application/problem+json when
// the request accepts it, else the same body as application/json.
func ErrorBodies(logger *slog.Logger) huma.Transformer {
	if logger == nil {
		logger = slog.Default()
	}
	return func(ctx huma.Context, status string, v any) (any, error) {
		if _, ok := v.(Recorded); ok {
			negotiateError(ctx)
			return v, nil
		}
		err, ok := v.(error)
		if !ok {
			return v, nil
		}
		negotiateError(ctx)
		if status == strconv.Itoa(http.StatusInternalServerError) {
			return internalError(ctx, logger, err), nil
		}
		if m, ok := v.(*huma.ErrorModel); ok {
			return clipped(m), nil
		}
		return v, nil
	}
}

// internalError logs err with the request's id and returns the body that
// replaces it.
func internalError(ctx huma.Context, logger *slog.Logger, err error) *huma.ErrorModel {
	id := chimw.GetReqID(ctx.Context())
	if id == "" {
		// Served outside an App (no RequestID middleware): an id of its
		// own still ties the answer to the log line.
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
	}
	text := err.Error()
	var m *huma.ErrorModel
	if errors.As(err, &m) {
		parts := []string{m.Detail}
		for _, d := range m.Errors {
			if d != nil {
				parts = append(parts, d.Error())
			}
		}
		text = strings.Join(parts, ": ")
	}
	op := ctx.Operation()
	logger.ErrorContext(ctx.Context(), "internal error", "request_id", id,
		"operation", op.OperationID, "method", ctx.Method(), "path", ctx.URL().Path, "err", text)
	return &huma.ErrorModel{
		Title:  http.StatusText(http.StatusInternalServerError),
		Status: http.StatusInternalServerError,
		Detail: problem.InternalDetail(id),
	}
}

// clipped is a copy of m whose echoes are cut (see ErrorBodies). m itself
// may be shared (a package-level error value) and is left alone.
func clipped(m *huma.ErrorModel) *huma.ErrorModel {
	out := *m
	out.Detail = clip(m.Detail, maxEchoedText)
	details := m.Errors
	if len(details) > maxErrorDetails {
		details = details[:maxErrorDetails]
	}
	out.Errors = make([]*huma.ErrorDetail, 0, len(details)+1)
	for _, d := range details {
		if d == nil {
			continue
		}
		out.Errors = append(out.Errors, &huma.ErrorDetail{
			Message:  clip(d.Message, maxEchoedText),
			Location: clip(d.Location, maxEchoedPlace),
			Value:    clipValue(d.Value),
		})
	}
	if n := len(m.Errors) - len(details); n > 0 {
		out.Errors = append(out.Errors, &huma.ErrorDetail{Message: fmt.Sprintf("and %d more errors", n)})
	}
	return &out
}

// clip cuts s to at most max bytes (at a rune boundary) and says so.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:cut], len(s))
}

// clipValue cuts an echoed value: a string, or the JSON of anything else,
// longer than maxEchoedValue becomes its clipped text.
func clipValue(v any) any {
	switch v := v.(type) {
	case nil, bool, int, int64, float64:
		return v
	case string:
		return clip(v, maxEchoedValue)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	if len(b) <= maxEchoedValue {
		return v
	}
	return clip(string(b), maxEchoedValue)
}
