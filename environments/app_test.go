package environments_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/go-chi/chi/v5"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/internal/envtest"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/framework/frameworktest"
	"github.com/taskgate/taskgate/internal/problem"
	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/tasks"
)

type greetInput struct {
	Name string `path:"name" maxLength:"20"`
}

type greetOutput struct {
	Body struct {
		Greeting string `json:"greeting"`
	}
}

// userApp is an application of the user's own: a chi router whose handlers
// read the caller, plus huma operations registered on the environment.
func userApp(t *testing.T) *environments.AppEnvironment {
	t.Helper()
	r := chi.NewRouter()
	r.Get("/hello", func(w http.ResponseWriter, r *http.Request) {
		id, _ := middleware.IdentityFromContext(r.Context())
		fmt.Fprintf(w, "hello %s", id.Subject)
	})
	r.Get("/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "item %s", chi.URLParam(r, "id"))
	})
	// Same path as a huma operation, another method: still the router's.
	r.Post("/greet/{name}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "posted %s", chi.URLParam(r, "name"))
	})
	r.Get("/public/ping", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "pong") })
	env, err := environments.NewAppEnvironment(environments.AppConfig{
		Settings: environments.Settings{
			Name:  "orders",
			Title: "Orders",
			Auth:  environments.Auth{Exclude: []string{"/public/*"}},
		},
		Handler: r,
		Register: func(api huma.API) {
			huma.Get(api, "/greet/{name}", func(ctx context.Context, in *greetInput) (*greetOutput, error) {
				id, _ := middleware.IdentityFromContext(ctx)
				out := &greetOutput{}
				out.Body.Greeting = "hi " + in.Name + " from " + id.Subject
				return out, nil
			})
		},
		Resources: tasks.Resources{CPU: "500m", Memory: "256Mi"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestAppEnvironmentBehindAuth(t *testing.T) {
	t.Parallel()
	env := userApp(t)
	srv := envtest.ServeEnv(t, env, envtest.AppDeps(t))

	tests := []struct {
		name, method, path, token string
		status                    int
		contains                  []string
	}{
		{"router, no credential", "GET", "/hello", "", http.StatusUnauthorized, nil},
		{"router, bad credential", "GET", "/hello", "not-a-valid-token-at-all-0123456789", http.StatusUnauthorized, nil},
		{"router sees the caller", "GET", "/hello", envtest.AppAlice, http.StatusOK, []string{"hello alice"}},
		{"router sees another caller", "GET", "/hello", envtest.AppBob, http.StatusOK, []string{"hello bob"}},
		{"router URL parameters", "GET", "/items/42", envtest.AppAlice, http.StatusOK, []string{"item 42"}},
		{"huma operation sees the caller", "GET", "/greet/ann", envtest.AppAlice, http.StatusOK, []string{`"greeting":"hi ann from alice"`}},
		{"huma validation", "GET", "/greet/" + strings.Repeat("n", 21), envtest.AppAlice, http.StatusUnprocessableEntity, []string{"path.name"}},
		{"other method of an operation's path", "POST", "/greet/ann", envtest.AppAlice, http.StatusOK, []string{"posted ann"}},
		{"excluded subtree", "GET", "/public/ping", "", http.StatusOK, []string{"pong"}},
		{"unknown path", "GET", "/nope", envtest.AppAlice, http.StatusNotFound, nil},
		{"docs are open", "GET", "/docs", "", http.StatusOK, []string{"<html"}},
		{"openapi lists the operation", "GET", "/openapi.json", "", http.StatusOK, []string{`"/greet/{name}"`, `"title":"Orders"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := envtest.Send(t, tt.method, srv.URL+tt.path, tt.token, "")
			r.Expect(t, tt.status, tt.contains...)
			if tt.status == http.StatusUnauthorized {
				if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("401 without a Bearer challenge: %v", r.Header)
				}
				if r.Header.Get("Content-Type") != problem.ContentType {
					t.Errorf("401 is not problem+json: %v", r.Header)
				}
			}
		})
	}

	// The router's own paths are not operations: they stay out of the docs.
	if doc := envtest.Send(t, "GET", srv.URL+"/openapi.json", "", "").Body; strings.Contains(doc, `"/hello"`) {
		t.Errorf("openapi.json documents the router's /hello: %s", doc)
	}
	if got, want := env.URL(), "https://acme--shop-orders.apps.test"; got != want {
		t.Errorf("URL() = %q, want %q", got, want)
	}
	if got := env.Resources().CPU; got != "500m" {
		t.Errorf("Resources().CPU = %q", got)
	}
}

// TestAppEnvironmentMountedUnderPrefix mounts the environment in a chi root
// the way an App mounts it under Settings.PathPrefix: operations and the
// user's router both see paths relative to the prefix.
func TestAppEnvironmentMountedUnderPrefix(t *testing.T) {
	t.Parallel()
	env := userApp(t)
	h, err := env.Build(envtest.AppDeps(t))
	if err != nil {
		t.Fatal(err)
	}
	root := chi.NewRouter()
	root.Mount("/team-a", h)
	srv := httptest.NewServer(root)
	defer srv.Close()

	envtest.Send(t, "GET", srv.URL+"/team-a/items/7", "", "").Expect(t, http.StatusOK, "item 7")
	envtest.Send(t, "GET", srv.URL+"/team-a/greet/zoe", "", "").Expect(t, http.StatusOK, `"greeting":"hi zoe from "`)
	envtest.Send(t, "POST", srv.URL+"/team-a/greet/zoe", "", "").Expect(t, http.StatusOK, "posted zoe")
	envtest.Send(t, "GET", srv.URL+"/items/7", "", "").Expect(t, http.StatusNotFound)
}

func TestAppEnvironmentOperationsOnly(t *testing.T) {
	t.Parallel()
	env := environments.MustAppEnvironment(environments.AppConfig{
		Settings: environments.Settings{Name: "bare", Auth: environments.Auth{Disabled: true}},
	})
	srv := envtest.ServeEnv(t, env, envtest.AppDeps(t))
	r := envtest.Send(t, "GET", srv.URL+"/anything", "", "")
	r.Expect(t, http.StatusNotFound)
	envtest.Send(t, "GET", srv.URL+"/openapi.json", "", "").Expect(t, http.StatusOK, `"openapi":"3.1`)
}

func TestNewAppEnvironmentRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  environments.AppConfig
		want string
	}{
		{"bad name", environments.AppConfig{Settings: environments.Settings{Name: "Bad_Name"}}, "not a lowercase DNS label"},
		{"bad label", environments.AppConfig{Settings: environments.Settings{Name: "ok", Label: "Bad"}}, "invalid URL label"},
		{"bad resources", environments.AppConfig{Settings: environments.Settings{Name: "ok"}, Resources: tasks.Resources{GPU: "NOPE:0"}}, "resources"},
		{"body limit too large", environments.AppConfig{Settings: environments.Settings{Name: "ok", Limits: environments.Limits{MaxBodyBytes: 5 << 30}}}, "MaxBodyBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := environments.NewAppEnvironment(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewAppEnvironment: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestAppEnvironmentBuildReportsRegistrationPanics checks that huma's
// panics while registering become a Build error.
func TestAppEnvironmentBuildReportsRegistrationPanics(t *testing.T) {
	t.Parallel()
	env := environments.MustAppEnvironment(environments.AppConfig{
		Settings: environments.Settings{Name: "broken"},
		Register: func(api huma.API) {
			huma.Get(api, "/x", func(context.Context, *struct {
				X int `query:"x" minimum:"not-a-number"`
			}) (*struct{}, error) {
				return nil, nil
			})
		},
	})
	_, err := env.Build(envtest.AppDeps(t))
	if err == nil || !strings.Contains(err.Error(), "environment broken: Register") {
		t.Fatalf("Build: %v, want the registration panic as an error", err)
	}
}

// TestAppEnvironmentLimits checks that Settings.Limits reach an app's
// handler: max in flight with a queue timeout, then a rate per caller.
func TestAppEnvironmentLimits(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}, 4), make(chan struct{})
	r := chi.NewRouter()
	r.Get("/slow", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "slow")
	})
	r.Get("/fast", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "fast") })

	inflight := environments.MustAppEnvironment(environments.AppConfig{
		Settings: environments.Settings{Name: "inflight", Limits: environments.Limits{
			MaxInFlight: 1, QueueTimeout: 100 * time.Millisecond,
		}},
		Handler: r,
	})
	srv := envtest.ServeEnv(t, inflight, envtest.AppDeps(t))
	first := make(chan envtest.Result, 1)
	go func() { first <- envtest.Send(t, "GET", srv.URL+"/slow", envtest.AppAlice, "") }()
	<-entered
	refused := envtest.Send(t, "GET", srv.URL+"/fast", envtest.AppBob, "")
	refused.Expect(t, http.StatusTooManyRequests)
	if refused.Header.Get("Retry-After") == "" || refused.Header.Get("Content-Type") != problem.ContentType {
		t.Errorf("429 without Retry-After or problem+json: %v", refused.Header)
	}
	close(release)
	(<-first).Expect(t, http.StatusOK, "slow")
	envtest.Send(t, "GET", srv.URL+"/fast", envtest.AppBob, "").Expect(t, http.StatusOK, "fast")

	rated := environments.MustAppEnvironment(environments.AppConfig{
		Settings: environments.Settings{Name: "rated", Limits: environments.Limits{
			RateLimit: 2, RateWindow: time.Hour,
		}},
		Handler: r,
	})
	srv = envtest.ServeEnv(t, rated, envtest.AppDeps(t))
	for range 2 {
		envtest.Send(t, "GET", srv.URL+"/fast", envtest.AppAlice, "").Expect(t, http.StatusOK)
	}
	limited := envtest.Send(t, "GET", srv.URL+"/fast", envtest.AppAlice, "")
	limited.Expect(t, http.StatusTooManyRequests)
	if limited.Header.Get("X-RateLimit-Limit") != "2" || limited.Header.Get("X-RateLimit-Remaining") != "0" {
		t.Errorf("429 without X-RateLimit-* headers: %v", limited.Header)
	}
	envtest.Send(t, "GET", srv.URL+"/fast", envtest.AppBob, "").Expect(t, http.StatusOK)
}

// unregistered is a task no App in these tests registers.
var unregistered = tasks.MustDefine("demo", "development", "unregistered",
	func(context.Context, struct{}) (struct{}, error) { return struct{}{}, nil }, nil)

// customApp mirrors the Flyte tutorial's custom FastAPI app: /health is
// open, POST /run-my-task runs a task as the caller and answers
// {run_id, url}.
func customApp(t *testing.T, name, prefix string, auth environments.Auth) *environments.AppEnvironment {
	t.Helper()
	r := chi.NewRouter()
	r.Get("/health", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `{"status":"healthy"}`) })
	r.Post("/run-my-task", func(w http.ResponseWriter, r *http.Request) {
		run, err := environments.Submit(r.Context(), demo.Echo, demo.EchoInput{Message: "from the custom app"}, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"run_id": run.Name, "url": "/run/" + run.Name})
	})
	r.Post("/run-unregistered", func(w http.ResponseWriter, r *http.Request) {
		_, err := environments.Submit(r.Context(), unregistered, struct{}{}, nil)
		http.Error(w, err.Error(), http.StatusInternalServerError)
	})
	auth.Exclude = append(auth.Exclude, "/health")
	return environments.MustAppEnvironment(environments.AppConfig{
		Settings: environments.Settings{Name: name, PathPrefix: prefix, Auth: auth},
		Handler:  r,
	})
}

// serveApp runs a real App (SQLite store, dispatcher, local node agent)
// with static tokens for alice and bob.
func serveApp(t *testing.T, envs ...environments.Environment) string {
	t.Helper()
	cfg, err := framework.ParseEnv(func(k string) string {
		switch k {
		case "TASKGATE_DATA_DIR":
			return t.TempDir()
		case "TASKGATE_AUTH_TOKENS":
			return envtest.AppAlice + "=alice," + envtest.AppBob + "=bob"
		case "TASKGATE_NODE_GPUS":
			return "A100:1"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc, err := framework.FromEnv(t.Context(), cfg, logger, demo.Registry(), envs...)
	if err != nil {
		t.Fatal(err)
	}
	return frameworktest.Serve(t, svc.App)
}

func TestSubmitRunsAsCaller(t *testing.T) {
	t.Parallel()
	base := serveApp(t, demo.Webhook(),
		customApp(t, "custom", "/custom", environments.Auth{}),
		customApp(t, "open", "/open", environments.Auth{Disabled: true}))

	envtest.Send(t, "GET", base+"/custom/health", "", "").Expect(t, http.StatusOK, "healthy")
	envtest.Send(t, "POST", base+"/custom/run-my-task", "", "").Expect(t, http.StatusUnauthorized)

	r := envtest.Send(t, "POST", base+"/custom/run-my-task", envtest.AppAlice, "")
	r.Expect(t, http.StatusOK, `"run_id"`)
	var started struct {
		RunID string `json:"run_id"`
		URL   string `json:"url"`
	}
	if err := json.Unmarshal([]byte(r.Body), &started); err != nil {
		t.Fatal(err)
	}

	// The run is alice's: she sees it, bob gets 404, as for POST /run-task.
	envtest.Send(t, "GET", base+started.URL, envtest.AppAlice, "").Expect(t, http.StatusOK, `"name":"`+started.RunID+`"`)
	envtest.Send(t, "GET", base+started.URL, envtest.AppBob, "").Expect(t, http.StatusNotFound)
	envtest.Send(t, "GET", base+"/runs", envtest.AppAlice, "").Expect(t, http.StatusOK, started.RunID)
	if body := envtest.Send(t, "GET", base+"/runs", envtest.AppBob, "").Body; strings.Contains(body, started.RunID) {
		t.Errorf("bob's runs list alice's run: %s", body)
	}

	// Without a verified caller there is nobody to run as.
	envtest.Send(t, "POST", base+"/open/run-my-task", "", "").Expect(t, http.StatusInternalServerError, "no verified caller")
	// A task the App cannot run is refused before anything is stored.
	envtest.Send(t, "POST", base+"/custom/run-unregistered", envtest.AppAlice, "").Expect(t, http.StatusInternalServerError, "not registered")
}

func TestSubmitOutsideAnAppEnvironment(t *testing.T) {
	t.Parallel()
	ctx := middleware.WithIdentity(t.Context(), middleware.Identity{Subject: "alice"})
	if _, err := environments.Submit(ctx, demo.Echo, demo.EchoInput{Message: "x"}, nil); !errors.Is(err, environments.ErrNoDispatcher) {
		t.Fatalf("Submit: %v, want ErrNoDispatcher", err)
	}
}
