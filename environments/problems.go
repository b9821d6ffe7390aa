package environments

import (
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
)

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

// errorBodies is the transformer of every response body an environment's
// huma API writes; it changes only errors. A 500 says nothing of its error
// but the request id, and the error goes to the log with that id: its
// text (a wrapped driver error, a function endpoint's own) may hold
// secrets. Other errors keep what they say, each echoed value, place and
// message cut to a short prefix, and at most maxErrorDetails details.
//
// A *QueueProblem is a recorded outcome of a queued request (its 500 is
// the replay's failure, which GET status shows its owner too), not an
// error of this request: it passes unchanged.
func errorBodies(logger *slog.Logger) huma.Transformer {
	if logger == nil {
		logger = slog.Default()
	}
	return func(ctx huma.Context, status string, v any) (any, error) {
		if _, ok := v.(*QueueProblem); ok {
			return v, nil
		}
		err, ok := v.(error)
		if !ok {
			return v, nil
		}
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

// clipped is a copy of m whose echoes are cut (see errorBodies). m itself
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
