package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The app's answers as fal's client reads them; make fal-client drives
// them through the queue with fal's own client.
func TestEcho(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
		status     int
		want       string
	}{
		{"prompt", `{"prompt":"a cat"}`, http.StatusOK, `{"prompt":"a cat","subject":""}`},
		{"empty prompt", `{"prompt":""}`, http.StatusOK, `{"prompt":"","subject":""}`},
		{"no prompt", `{"wrong":1}`, http.StatusUnprocessableEntity,
			`{"detail":[{"loc":["body","prompt"],"msg":"Field required","type":"missing"}]}`},
		{"not JSON", `prompt`, http.StatusUnprocessableEntity,
			`{"detail":[{"loc":["body","prompt"],"msg":"Field required","type":"missing"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := httptest.NewRecorder()
			echo(w, httptest.NewRequest(http.MethodPost, "/echo", strings.NewReader(tt.body)))
			require.Equal(t, tt.status, w.Code)
			require.Equal(t, "application/json", w.Header().Get("Content-Type"))
			require.JSONEq(t, tt.want, w.Body.String())
		})
	}
}

func TestSlowStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	w := httptest.NewRecorder()
	slow(w, httptest.NewRequestWithContext(ctx, http.MethodPost, "/slow", strings.NewReader(`{"seconds":60}`)))
	require.Empty(t, w.Body.String(), "a cancelled request writes nothing")
}
