package problem_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/internal/problem"
)

func TestContentTypeFor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, accept, want string
	}{
		{"absent", "", problem.ContentType},
		{"anything", "*/*", problem.ContentType},
		{"json", "application/json", problem.PlainJSON},
		{"problem", "application/problem+json", problem.ContentType},
		{"both, tie goes to problem", "application/json, application/problem+json", problem.ContentType},
		{"json preferred by q", "application/problem+json;q=0.5, application/json", problem.PlainJSON},
		{"problem preferred by q", "application/json;q=0.4, application/problem+json;q=0.9", problem.ContentType},
		{"json beside a wildcard", "application/json, */*;q=0.1", problem.PlainJSON},
		{"html", "text/html", problem.ContentType},
		{"browser", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", problem.ContentType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, problem.ContentTypeFor(tc.accept))
		})
	}
}

// TestWriteNegotiates: the same body under either type, and Vary says the
// type depends on Accept (once, even when a handler already said so).
func TestWriteNegotiates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, accept, vary, want string
		wantVary                 []string
	}{
		{"json", "application/json", "", problem.PlainJSON, []string{"Accept"}},
		{"problem", "application/problem+json", "", problem.ContentType, []string{"Accept"}},
		{"json, vary already set", "application/json", "Origin, accept", problem.PlainJSON, []string{"Origin, accept"}},
		{"vary on another header", "", "Origin", problem.ContentType, []string{"Origin", "Accept"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Accept", tc.accept)
			w := httptest.NewRecorder()
			if tc.vary != "" {
				w.Header().Set("Vary", tc.vary)
			}
			problem.Write(w, r, http.StatusConflict, "taken")
			require.Equal(t, http.StatusConflict, w.Code)
			require.Equal(t, tc.want, w.Header().Get("Content-Type"))
			require.Equal(t, tc.wantVary, w.Header().Values("Vary"))
			var body map[string]any
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body))
			require.Equal(t, map[string]any{"title": "Conflict", "status": float64(409), "detail": "taken"}, body)
		})
	}
}

func TestWriteWithoutRequestIsProblem(t *testing.T) {
	t.Parallel()
	w := httptest.NewRecorder()
	problem.Write(w, nil, http.StatusGone, "")
	require.Equal(t, problem.ContentType, w.Header().Get("Content-Type"))
}
