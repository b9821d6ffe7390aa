package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/queue"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/tasks"
)

// appPrefix is where the app is mounted; fal's proxy is appPrefix+"/fal".
const appPrefix = "/gen"

// maxSlow bounds POST /slow.
const maxSlow = 60 * time.Second

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(context.Background(), logger); err != nil {
		logger.Error("fal-queue stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, logger *slog.Logger) error {
	cfg, err := framework.LoadEnv()
	if err != nil {
		return err
	}
	svc, err := framework.FromEnv(ctx, cfg, logger, tasks.NewRegistry(), appEnv())
	if err != nil {
		return err
	}
	if svc.DevToken != "" {
		// On stdout for the developer at the terminal; never logged.
		fmt.Printf("fal-queue on http://%s%s (fal proxy: %s/fal)\n  export TOKEN=%s\n",
			cfg.Addr, appPrefix, appPrefix, svc.DevToken)
	}
	return svc.App.Run(ctx)
}

// appEnv is the app behind its queue.
func appEnv() *environments.AppEnvironment {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /echo", echo)
	mux.HandleFunc("POST /slow", slow)
	return environments.MustAppEnvironment(environments.AppConfig{
		Settings:  environments.Settings{Name: "gen", Title: "fal-style app", PathPrefix: appPrefix},
		Handler:   mux,
		Resources: tasks.Resources{CPU: "100m", Memory: "64Mi"},
		Queue:     queue.MustNew(queue.Config{}),
	})
}

// fieldError is one entry of a FastAPI validation error, which fal's
// client reads as ValidationError.fieldErrors.
type fieldError struct {
	Loc  []string `json:"loc"`
	Msg  string   `json:"msg"`
	Type string   `json:"type"`
}

func echo(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Prompt *string `json:"prompt"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in); err != nil || in.Prompt == nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []fieldError{
			{Loc: []string{"body", "prompt"}, Msg: "Field required", Type: "missing"},
		}})
		return
	}
	id, _ := middleware.IdentityFromContext(r.Context())
	// Kept with the request: fal's status with logs: true returns it.
	tasks.Logger(r.Context()).Info("echoing", "chars", len(*in.Prompt))
	writeJSON(w, http.StatusOK, map[string]any{"prompt": *in.Prompt, "subject": id.Subject})
}

func slow(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Seconds float64 `json:"seconds"`
	}
	_ = json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in)
	wait := min(max(time.Duration(in.Seconds*float64(time.Second)), 0), maxSlow)
	select {
	case <-time.After(wait):
		writeJSON(w, http.StatusOK, map[string]any{"waited": wait.Seconds()})
	case <-r.Context().Done():
		// Cancelled (fal.queue.cancel): the queue records the request as
		// cancelled whatever is written here.
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
