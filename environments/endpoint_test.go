package environments_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/internal/envtest"
	"github.com/taskgate/taskgate/middleware"
)

type squareInput struct {
	X int `query:"x" required:"true" minimum:"-1000" maximum:"1000" doc:"the number to square"`
}

type squareOutput struct {
	Body struct {
		Square int `json:"square"`
	}
}

type greetingInput struct {
	Lang string `query:"lang" enum:"en,fr" default:"en"`
	Body struct {
		Name  string `json:"name" minLength:"1" maxLength:"40"`
		Times int    `json:"times,omitempty" minimum:"1" maximum:"3"`
	}
}

type greetingOutput struct {
	Body struct {
		Text   string `json:"text"`
		Caller string `json:"caller"`
	}
}

func square(_ context.Context, in *squareInput) (*squareOutput, error) {
	out := &squareOutput{}
	out.Body.Square = in.X * in.X
	return out, nil
}

func greeting(ctx context.Context, in *greetingInput) (*greetingOutput, error) {
	word := map[string]string{"en": "hello", "fr": "bonjour"}[in.Lang]
	out := &greetingOutput{}
	out.Body.Text = strings.TrimSpace(strings.Repeat(word+" "+in.Body.Name+" ", max(in.Body.Times, 1)))
	if id, ok := middleware.IdentityFromContext(ctx); ok {
		out.Body.Caller = id.Subject
	}
	return out, nil
}

func TestEndpoint(t *testing.T) {
	t.Parallel()
	env := environments.MustAppEnvironment(environments.AppConfig{
		Settings: environments.Settings{Name: "functions"},
	})
	environments.Endpoint(env, "square", square, nil)
	environments.Endpoint(env, "greeting", greeting, &environments.EndpointOptions{
		Tags: []string{"greetings"}, Description: "Greets someone.",
	})
	environments.Endpoint(env, "replace-greeting", greeting, &environments.EndpointOptions{
		Method: "put", Path: "/greetings/current",
	})
	srv := envtest.ServeEnv(t, env, envtest.AppDeps(t))

	tests := []struct {
		name, method, path, body string
		status                   int
		contains                 []string
	}{
		{"query input", "GET", "/square?x=12", "", http.StatusOK, []string{`"square":144`}},
		{"negative query input", "GET", "/square?x=-3", "", http.StatusOK, []string{`"square":9`}},
		{"query not a number", "GET", "/square?x=abc", "", http.StatusUnprocessableEntity, []string{"query.x"}},
		{"query missing", "GET", "/square", "", http.StatusUnprocessableEntity, []string{"query.x"}},
		{"query out of range", "GET", "/square?x=1001", "", http.StatusUnprocessableEntity, []string{"query.x"}},
		{"query-only input is GET", "POST", "/square?x=2", "", http.StatusMethodNotAllowed, nil},
		{"body input is POST", "POST", "/greeting", `{"name":"Ann","times":2}`, http.StatusOK,
			[]string{`"text":"hello Ann hello Ann"`, `"caller":"alice"`}},
		{"body and query", "POST", "/greeting?lang=fr", `{"name":"Ann"}`, http.StatusOK, []string{`"text":"bonjour Ann"`}},
		{"body field too short", "POST", "/greeting", `{"name":""}`, http.StatusUnprocessableEntity, []string{"body.name"}},
		{"body field out of range", "POST", "/greeting", `{"name":"Ann","times":9}`, http.StatusUnprocessableEntity, []string{"body.times"}},
		{"body missing field", "POST", "/greeting", `{}`, http.StatusUnprocessableEntity, []string{"name"}},
		{"body not JSON", "POST", "/greeting", `{"name":`, http.StatusBadRequest, nil},
		{"query enum", "POST", "/greeting?lang=de", `{"name":"Ann"}`, http.StatusUnprocessableEntity, []string{"query.lang"}},
		{"method and path configured", "PUT", "/greetings/current", `{"name":"Bo"}`, http.StatusOK, []string{`"text":"hello Bo"`}},
		{"documented", "GET", "/openapi.json", "", http.StatusOK, []string{
			`"operationId":"square"`, `"operationId":"greeting"`, `"operationId":"replace-greeting"`,
			`"/greetings/current"`, `"the number to square"`, `"Greets someone."`, `"greetings"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := envtest.Send(t, tt.method, srv.URL+tt.path, envtest.AppAlice, tt.body)
			r.Expect(t, tt.status, tt.contains...)
			if tt.status == http.StatusUnprocessableEntity && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") {
				t.Errorf("422 is not problem+json: %v", r.Header)
			}
		})
	}
}

// TestEndpointIsLimitedByTheEnvironment checks that the environment's body
// limit applies to function endpoints too, whatever huma's own cap.
func TestEndpointIsLimitedByTheEnvironment(t *testing.T) {
	t.Parallel()
	env := environments.MustAppEnvironment(environments.AppConfig{
		Settings: environments.Settings{Name: "small", Limits: environments.Limits{MaxBodyBytes: 64}},
	})
	environments.Endpoint(env, "greeting", greeting, &environments.EndpointOptions{MaxBodyBytes: 1 << 20})
	srv := envtest.ServeEnv(t, env, envtest.AppDeps(t))
	envtest.Send(t, "POST", srv.URL+"/greeting", envtest.AppAlice, `{"name":"Ann"}`).Expect(t, http.StatusOK)
	long := fmt.Sprintf(`{"name":"Ann","pad":"%s"}`, strings.Repeat("x", 100))
	envtest.Send(t, "POST", srv.URL+"/greeting", envtest.AppAlice, long).Expect(t, http.StatusRequestEntityTooLarge)
}

func TestEndpointPanicsOnBadConfiguration(t *testing.T) {
	t.Parallel()
	newEnv := func() *environments.AppEnvironment {
		return environments.MustAppEnvironment(environments.AppConfig{Settings: environments.Settings{Name: "e"}})
	}
	tests := []struct {
		name    string
		call    func(env *environments.AppEnvironment)
		setting string
	}{
		{"bad name", func(env *environments.AppEnvironment) { environments.Endpoint(env, "Square", square, nil) }, "name"},
		{"nil function", func(env *environments.AppEnvironment) {
			environments.Endpoint[squareInput, squareOutput](env, "square", nil, nil)
		}, "nil function"},
		{"bad method", func(env *environments.AppEnvironment) {
			environments.Endpoint(env, "square", square, &environments.EndpointOptions{Method: "FETCH"})
		}, "Method"},
		{"bad path", func(env *environments.AppEnvironment) {
			environments.Endpoint(env, "square", square, &environments.EndpointOptions{Path: "square"})
		}, "Path"},
		{"name twice", func(env *environments.AppEnvironment) {
			environments.Endpoint(env, "square", square, nil)
			environments.Endpoint(env, "square", square, &environments.EndpointOptions{Path: "/other"})
		}, "already has an endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if msg := fmt.Sprint(recover()); !strings.Contains(msg, tt.setting) {
					t.Errorf("panic %q does not name %q", msg, tt.setting)
				}
			}()
			tt.call(newEnv())
		})
	}
}

// TestEndpointBesideRegister checks that function endpoints and operations
// from AppConfig.Register share one API and one document.
func TestEndpointBesideRegister(t *testing.T) {
	t.Parallel()
	env := environments.MustAppEnvironment(environments.AppConfig{
		Settings: environments.Settings{Name: "mixed"},
		Register: func(api huma.API) {
			huma.Get(api, "/version", func(context.Context, *struct{}) (*struct{ Body string }, error) {
				return &struct{ Body string }{Body: "v1"}, nil
			})
		},
	})
	environments.Endpoint(env, "square", square, nil)
	srv := envtest.ServeEnv(t, env, envtest.AppDeps(t))
	envtest.Send(t, "GET", srv.URL+"/version", envtest.AppBob, "").Expect(t, http.StatusOK, "v1")
	envtest.Send(t, "GET", srv.URL+"/square?x=5", envtest.AppBob, "").Expect(t, http.StatusOK, `"square":25`)
	envtest.Send(t, "GET", srv.URL+"/openapi.json", "", "").Expect(t, http.StatusOK, `"/version"`, `"/square"`)
}

func ExampleEndpoint() {
	env := environments.MustAppEnvironment(environments.AppConfig{
		Settings: environments.Settings{Name: "math"},
	})
	// GET /square?x=N: the input has no Body, so the method is GET.
	environments.Endpoint(env, "square", func(_ context.Context, in *struct {
		X int `query:"x" required:"true" maximum:"1000"`
	}) (*squareOutput, error) {
		out := &squareOutput{}
		out.Body.Square = in.X * in.X
		return out, nil
	}, nil)

	h, err := env.Build(&environments.Deps{Version: "1.0.0"})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(query string) (int, string) {
		resp, err := http.Get(srv.URL + "/square?" + query)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	fmt.Println(get("x=7"))
	status, problem := get("x=seven")
	fmt.Println(status, strings.Contains(problem, `"location":"query.x"`))
	// Output:
	// 200 {"square":49}
	// 422 true
}
