package problem

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// ContentType is the media type of every error body.
const ContentType = "application/problem+json"

// Write sends a problem+json body with the given status. detail may be empty.
func Write(w http.ResponseWriter, status int, detail string) {
	WriteModel(w, &huma.ErrorModel{
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
	})
}

// WriteModel sends m with m.Status as the response status.
func WriteModel(w http.ResponseWriter, m *huma.ErrorModel) {
	if m.Title == "" {
		m.Title = http.StatusText(m.Status)
	}
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(m.Status)
	_ = json.NewEncoder(w).Encode(m)
}

// Unauthorized sends 401 with a Bearer challenge. invalid marks that a
// credential was presented and refused (RFC 6750 error="invalid_token"); the
// body never says why, so a prober learns nothing about the failure.
func Unauthorized(w http.ResponseWriter, invalid bool) {
	challenge := `Bearer realm="taskgate"`
	if invalid {
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	Write(w, http.StatusUnauthorized, "authentication required")
}

// TooManyRequests sends 429 with Retry-After in whole seconds (at least 1).
func TooManyRequests(w http.ResponseWriter, retryAfter time.Duration, detail string) {
	secs := int(retryAfter.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	Write(w, http.StatusTooManyRequests, detail)
}

// InternalDetail is the detail of a 500: nothing of the error itself, which
// may hold secrets and goes to the log only, but the request id under
// which the log has it.
func InternalDetail(requestID string) string {
	if requestID == "" {
		return "internal error"
	}
	return "internal error; request id " + requestID
}
