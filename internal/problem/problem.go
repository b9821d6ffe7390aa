package problem

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/negotiation"
)

// Media types an error body is negotiated between: the same body goes
// under either.
const (
	ContentType = "application/problem+json"
	PlainJSON   = "application/json"
)

// ContentTypeFor is the media type of an error body answering a request
// with this Accept header: application/problem+json when the client
// accepts it or says nothing it understands (no Accept, */*, text/html),
// application/json when the client prefers it, so that a client such as
// fal's, which reads a body only under the type it asked for, still reads
// the error. Every error writer, huma's included, uses this one rule.
func ContentTypeFor(accept string) string {
	if accept != "" && negotiation.SelectQValue(accept, []string{ContentType, PlainJSON}) == PlainJSON {
		return PlainJSON
	}
	return ContentType
}

// VaryAccept adds Accept to h's Vary unless it is there already: an error
// body's type depends on it, so a cache must not serve one client's to
// another.
func VaryAccept(h http.Header) {
	for _, v := range h.Values("Vary") {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f == "*" || strings.EqualFold(f, "Accept") {
				return
			}
		}
	}
	h.Add("Vary", "Accept")
}

// Write sends a problem body with the given status, its type negotiated
// from r's Accept (see ContentTypeFor; r may be nil). detail may be empty.
func Write(w http.ResponseWriter, r *http.Request, status int, detail string) {
	WriteModel(w, r, &huma.ErrorModel{
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
	})
}

// WriteModel sends m with m.Status as the response status, its type
// negotiated from r's Accept (r may be nil).
func WriteModel(w http.ResponseWriter, r *http.Request, m *huma.ErrorModel) {
	if m.Title == "" {
		m.Title = http.StatusText(m.Status)
	}
	accept := ""
	if r != nil {
		accept = r.Header.Get("Accept")
	}
	h := w.Header()
	h.Set("Content-Type", ContentTypeFor(accept))
	VaryAccept(h)
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(m.Status)
	_ = json.NewEncoder(w).Encode(m)
}

// Unauthorized sends 401 with a Bearer challenge. invalid marks that a
// credential was presented and refused (RFC 6750 error="invalid_token"); the
// body never says why, so a prober learns nothing about the failure.
func Unauthorized(w http.ResponseWriter, r *http.Request, invalid bool) {
	challenge := `Bearer realm="taskgate"`
	if invalid {
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	Write(w, r, http.StatusUnauthorized, "authentication required")
}

// TooManyRequests sends 429 with Retry-After in whole seconds (at least 1).
func TooManyRequests(w http.ResponseWriter, r *http.Request, retryAfter time.Duration, detail string) {
	secs := int(retryAfter.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	Write(w, r, http.StatusTooManyRequests, detail)
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
