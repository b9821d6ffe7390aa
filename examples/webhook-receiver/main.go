package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/taskgate/taskgate/middleware"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(logger); err != nil {
		logger.Error("webhook-receiver stopped", "err", err)
		os.Exit(1)
	}
}

func run(logger *slog.Logger) error {
	raw := os.Getenv("TASKGATE_WEBHOOK_SECRET")
	if raw == "" {
		return errors.New("TASKGATE_WEBHOOK_SECRET is not set: give the whsec_ secret taskgate signs callbacks with")
	}
	addr := os.Getenv("WEBHOOK_RECEIVER_ADDR")
	if addr == "" {
		addr = "127.0.0.1:9090"
	}
	h, err := newHandler(strings.Split(raw, ","), logger)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("listening", "addr", "http://"+addr+"/callbacks")
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// runCallback is the part of taskgate's payload this receiver reads.
type runCallback struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      struct {
		Name  string `json:"name"`
		Phase string `json:"phase"`
		Error string `json:"error"`
	} `json:"data"`
}

// newHandler serves POST /callbacks behind signature verification. It turns
// VerifyWebhook's construction panic on a malformed secret into an error so
// that main can report it plainly.
func newHandler(secrets []string, logger *slog.Logger) (h http.Handler, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("TASKGATE_WEBHOOK_SECRET: %v", r)
		}
	}()
	verify := middleware.VerifyWebhookWith(&middleware.WebhookOpts{Logger: logger}, secrets...)
	seen := newSeenSet(10_000)

	mux := http.NewServeMux()
	mux.Handle("POST /callbacks", verify(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		msg, _ := middleware.WebhookFromContext(r.Context())
		if !seen.add(msg.ID) {
			// A retry of a message already handled (its 2xx was lost):
			// acknowledge it again, act once.
			w.WriteHeader(http.StatusNoContent)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var cb runCallback
		if err := json.Unmarshal(body, &cb); err != nil {
			// A signed body that is not ours to parse: refusing with 400
			// would only make taskgate retry it; accept and log.
			logger.Warn("unreadable callback", "webhook_id", msg.ID, "err", err)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		logger.Info("callback", "webhook_id", msg.ID, "type", cb.Type, "run", cb.Data.Name,
			"phase", cb.Data.Phase, "error", cb.Data.Error, "at", cb.Timestamp)
		w.WriteHeader(http.StatusNoContent)
	})))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"healthy"}`)
	})
	return mux, nil
}

// seenSet remembers the last n webhook ids. A real receiver would record
// them in its database, in the transaction that acts on the callback.
type seenSet struct {
	mu    sync.Mutex
	ids   map[string]struct{}
	order []string
	next  int
}

func newSeenSet(n int) *seenSet {
	return &seenSet{ids: make(map[string]struct{}, n), order: make([]string, n)}
}

// add reports whether id is new, remembering it.
func (s *seenSet) add(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ids[id]; ok {
		return false
	}
	if old := s.order[s.next]; old != "" {
		delete(s.ids, old)
	}
	s.order[s.next] = id
	s.next = (s.next + 1) % len(s.order)
	s.ids[id] = struct{}{}
	return true
}
