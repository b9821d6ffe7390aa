package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskgate/taskgate/internal/stdwebhook"
	"github.com/taskgate/taskgate/tasks/callback"
)

// lines collects the receiver's log records.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lines) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

// taskgate's own sender delivers to this receiver: the callback is verified,
// acted on once, and a resend of the same webhook-id is acknowledged
// without acting again.
func TestReceiverAcceptsTaskgateCallbacks(t *testing.T) {
	secret := stdwebhook.NewSecret()
	var log lines
	h, err := newHandler([]string{secret.Encode()}, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	d, err := callback.New(callback.Config{Secrets: []stdwebhook.Secret{secret}, AllowPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	run, _ := json.Marshal(map[string]string{"name": "run-42", "phase": "succeeded"})
	body, err := callback.EncodePayload(callback.TypeRunCompleted, time.Now(), run)
	if err != nil {
		t.Fatal(err)
	}
	msg := callback.Message{ID: "msg_42", URL: srv.URL + "/callbacks", Body: body}
	for range 2 {
		if res := d.Deliver(context.Background(), msg); !res.Delivered() || res.StatusCode != http.StatusNoContent {
			t.Fatalf("delivery: %+v", res)
		}
	}
	if n := log.count("run=run-42"); n != 1 {
		t.Fatalf("callback handled %d times, want once:\n%s", n, log.buf.String())
	}
}

func TestReceiverRefusesForgery(t *testing.T) {
	h, err := newHandler([]string{stdwebhook.NewSecret().Encode()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	d, err := callback.New(callback.Config{Secrets: []stdwebhook.Secret{stdwebhook.NewSecret()}, AllowPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	res := d.Deliver(context.Background(), callback.Message{ID: "msg_x", URL: srv.URL + "/callbacks", Body: []byte(`{}`)})
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", res.StatusCode)
	}
}

func TestReceiverBadSecretIsAnError(t *testing.T) {
	if _, err := newHandler([]string{"whsec_tooshort"}, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "TASKGATE_WEBHOOK_SECRET") {
		t.Fatalf("newHandler with a malformed secret: %v", err)
	}
}

func TestSeenSetForgetsOldest(t *testing.T) {
	s := newSeenSet(2)
	for i, step := range []struct {
		id  string
		new bool
	}{{"a", true}, {"a", false}, {"b", true}, {"c", true}, {"a", true}, {"c", false}} {
		if got := s.add(step.id); got != step.new {
			t.Fatalf("step %d add(%s) = %v, want %v", i, step.id, got, step.new)
		}
	}
}
