package client

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/taskgate/taskgate/tasks"
)

// Error is an answer of the API that is not a success: its problem+json
// (RFC 9457) body, as huma and taskgate's middleware write it. Match it
// with errors.As.
type Error struct {
	// Status is the HTTP status code.
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Type   string `json:"type,omitempty"`
	// Code is the queue's machine-readable reason (ALREADY_COMPLETED,
	// IN_QUEUE, CANCELLED…), where the API gives one.
	Code string `json:"code,omitempty"`
	// Errors name each bad field of a 422 (or 400).
	Errors []FieldError `json:"errors,omitempty"`
	// RequestID is the id of the request in the server's logs.
	RequestID string `json:"-"`
	// RetryAfter is the server's Retry-After, zero when it gave none.
	RetryAfter time.Duration `json:"-"`
}

// FieldError is one bad field: Location is where ("body.message",
// "query.limit", "header.Idempotency-Key"), Value what was sent.
type FieldError struct {
	Message  string `json:"message"`
	Location string `json:"location,omitempty"`
	Value    any    `json:"value,omitempty"`
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", e.Status, e.Title)
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	for i, f := range e.Errors {
		if i == 0 {
			b.WriteString(" (")
		} else {
			b.WriteString("; ")
		}
		if f.Location != "" {
			b.WriteString(f.Location + ": ")
		}
		b.WriteString(f.Message)
		if i == len(e.Errors)-1 {
			b.WriteString(")")
		}
	}
	return b.String()
}

// maxErrorBytes bounds the body of an error answer kept in an *Error.
const maxErrorBytes = 64 << 10

// errorFrom reads a non-2xx answer. A body that is not a problem (a proxy's
// text page) becomes the Detail, shortened.
func errorFrom(status int, header http.Header, body []byte, requestID string) *Error {
	e := &Error{}
	mt, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	if mt == "application/problem+json" || mt == "application/json" {
		_ = json.Unmarshal(body, e)
	}
	if e.Status == 0 && e.Title == "" && e.Detail == "" {
		detail := strings.TrimSpace(string(body))
		if len(detail) > 512 {
			detail = detail[:512] + "…"
		}
		e.Detail = detail
	}
	e.Status = status
	if e.Title == "" {
		e.Title = http.StatusText(status)
	}
	e.RequestID = header.Get("X-Request-Id")
	if e.RequestID == "" {
		e.RequestID = requestID
	}
	e.RetryAfter, _ = parseRetryAfter(header.Get("Retry-After"), time.Now())
	return e
}

// RunError is a run that ended in another phase than succeeded: failed,
// aborted or timed out.
type RunError struct {
	Run *RunStatus
}

func (e *RunError) Error() string {
	msg := fmt.Sprintf("run %s (%s) %s", e.Run.Name, e.Run.Task, e.Run.Phase)
	if e.Run.Error != "" {
		msg += ": " + e.Run.Error
	}
	return msg
}

// Phase is the phase the run ended in.
func (e *RunError) Phase() tasks.Phase { return e.Run.Phase }
