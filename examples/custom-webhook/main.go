package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/go-chi/chi/v5"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/webhook"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/tasks"
)

// webhookPrefix is where the prebuilt webhook environment is mounted.
const webhookPrefix = "/webhook"

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(context.Background(), logger); err != nil {
		logger.Error("custom-webhook stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, logger *slog.Logger) error {
	cfg, err := framework.LoadEnv()
	if err != nil {
		return err
	}
	svc, err := newService(ctx, cfg, logger)
	if err != nil {
		return err
	}
	if svc.DevToken != "" {
		// On stdout for the developer at the terminal; never logged.
		fmt.Printf("custom-webhook on http://%s (docs: /docs)\n  export TOKEN=%s\n", cfg.Addr, svc.DevToken)
	}
	return svc.App.Run(ctx)
}

// newService wires the custom app and the restricted webhook into one App.
func newService(ctx context.Context, cfg framework.EnvConfig, logger *slog.Logger) (*framework.Service, error) {
	custom, err := customApp()
	if err != nil {
		return nil, err
	}
	restricted, err := webhook.New(webhook.Config{
		Settings: environments.Settings{
			Name:       "restricted-webhook",
			Title:      "Restricted webhook",
			PathPrefix: webhookPrefix,
		},
		Groups:       []string{webhook.GroupCore, webhook.GroupTask, webhook.GroupRun},
		AllowedTasks: []string{"demo/development/echo", MyTask.Definition().ID()},
	})
	if err != nil {
		return nil, err
	}
	reg := demo.Registry()
	reg.MustRegister(MyTask)
	return framework.FromEnv(ctx, cfg, logger, reg, custom, restricted)
}

// MyTaskInput is the payload of the Flyte tutorial's client (step 4).
type MyTaskInput struct {
	X int    `json:"x" doc:"A number."`
	Y string `json:"y" maxLength:"1024" doc:"A string."`
}

// MyTaskOutput repeats Y X times.
type MyTaskOutput struct {
	Result string `json:"result"`
}

// MyTask is my-project/development/my-task, the task that the Flyte
// tutorial's client starts; its client runs unchanged against this
// example's webhook environment (see testdata/flyte_client.py).
var MyTask = tasks.MustDefine("my-project", "development", "my-task",
	func(_ context.Context, in MyTaskInput) (MyTaskOutput, error) {
		return MyTaskOutput{Result: strings.Repeat(in.Y, min(max(in.X, 0), 100))}, nil
	}, &tasks.Options{Description: "Repeats y x times (at most 100).", Resources: tasks.Resources{CPU: "100m", Memory: "16Mi"}})

// customApp is the FastAPIAppEnvironment of the tutorial: a chi router for
// the plain routes, and a typed function endpoint that shows in /docs.
func customApp() (*environments.AppEnvironment, error) {
	r := chi.NewRouter()
	r.Get("/health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	env, err := environments.NewAppEnvironment(environments.AppConfig{
		Settings: environments.Settings{
			Name:  "custom-webhook-service",
			Title: "My taskgate webhook",
			// /health is open by default; everything else needs a caller.
		},
		Handler:   r,
		Resources: tasks.Resources{CPU: "1", Memory: "512Mi"},
	})
	if err != nil {
		return nil, err
	}
	environments.Endpoint(env, "run-my-task", runMyTask, &environments.EndpointOptions{
		Summary:     "Run demo/echo as the caller",
		Description: "Starts demo/development/echo on behalf of the caller and returns where to follow it.",
	})
	return env, nil
}

// RunMyTaskInput is the body of POST /run-my-task: the task's inputs.
type RunMyTaskInput struct {
	Body demo.EchoInput
}

// RunMyTaskOutput names the run and where its owner follows it.
type RunMyTaskOutput struct {
	Body struct {
		RunID string `json:"run_id" doc:"Name of the run."`
		URL   string `json:"url" doc:"Path of the run in the webhook environment."`
	}
}

func runMyTask(ctx context.Context, in *RunMyTaskInput) (*RunMyTaskOutput, error) {
	run, err := environments.Submit(ctx, demo.Echo, in.Body, nil)
	switch {
	case errors.Is(err, environments.ErrNoCaller):
		return nil, huma.Error401Unauthorized("authentication required")
	case err != nil:
		// Text that cannot be stored is a 422 naming the field; anything
		// else is a 500 that says "internal error" and the request id,
		// while the error itself is logged with that id.
		return nil, err
	}
	out := &RunMyTaskOutput{}
	out.Body.RunID = run.Name
	out.Body.URL = webhookPrefix + "/run/" + run.Name
	return out, nil
}
