package openapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/queue"
	"github.com/taskgate/taskgate/environments/server"
	"github.com/taskgate/taskgate/environments/webhook"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/openapi"
)

// predict is an app environment's own operation, as a user writes one.
type predictInput struct {
	Body struct {
		Prompt string `json:"prompt" minLength:"1"`
	}
}

type predictOutput struct {
	Body struct {
		Text string `json:"text"`
	}
}

// kinds are an environment of each kind that serves documents: the
// webhook environment (with every group, under a prefix, limits and a
// required group), and an app environment with a queue and operations of
// its own. The proxied server environment serves none: it passes every
// path, /openapi.json included, to the server it runs.
func kinds(t *testing.T) map[string]environments.Environment {
	t.Helper()
	hook, err := webhook.New(webhook.Config{
		Settings: environments.Settings{
			Name: "hook", PathPrefix: "/hook",
			Auth:   environments.Auth{RequiredGroup: "ml"},
			Limits: environments.Limits{RateLimit: 10, RateWindow: time.Minute},
		},
		Groups: []string{webhook.GroupAll},
	})
	require.NoError(t, err)
	app, err := environments.NewAppEnvironment(environments.AppConfig{
		Settings: environments.Settings{Name: "app", PathPrefix: "/app", Limits: environments.Limits{MaxInFlight: 2}},
		Register: func(api huma.API) {
			huma.Register(api, huma.Operation{
				OperationID: "predict", Method: http.MethodPost, Path: "/predict", Summary: "Predict",
			}, func(context.Context, *predictInput) (*predictOutput, error) { return &predictOutput{}, nil })
		},
		Queue: queue.MustNew(queue.Config{}),
	})
	require.NoError(t, err)
	_ = server.Config{} // the kind without documents, named above
	return map[string]environments.Environment{"webhook": hook, "app with queue": app, "quickstart": demo.Webhook()}
}

// TestDocumentsAreValid validates every kind's documents with
// kin-openapi: the 3.0 ones strictly, the 3.1 ones as far as kin-openapi
// checks 3.1 (it loads and validates the document's structure and its
// schemas as JSON Schema 2020-12, but not every 3.1-only keyword).
func TestDocumentsAreValid(t *testing.T) {
	envs := kinds(t)
	var list []environments.Environment
	var names []string
	for name, env := range envs {
		names = append(names, name)
		list = append(list, env)
	}
	docs, err := openapi.Documents(context.Background(), list...)
	require.NoError(t, err)
	for i, name := range names {
		for _, file := range []string{"openapi-3.0.yaml", "openapi.yaml"} {
			loader := openapi3.NewLoader()
			doc, err := loader.LoadFromData(docs[i][file])
			require.NoError(t, err, "%s: %s does not load", name, file)
			require.NoError(t, doc.Validate(loader.Context), "%s: %s is invalid", name, file)
			checkDeclared(t, name+" "+file, doc)
		}
	}
}

// checkDeclared checks what generated clients and linters rely on: every
// operation declares its security (none on public paths), 4xx errors as
// problem+json and json, and the version and servers are set.
func checkDeclared(t *testing.T, what string, doc *openapi3.T) {
	t.Helper()
	require.NotEmpty(t, doc.Info.Version, what)
	require.NotEmpty(t, doc.Servers, what)
	require.Contains(t, doc.Components.SecuritySchemes, "bearer", what)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := what + ": " + method + " " + path
			require.NotNil(t, op.Security, "%s declares no security", where)
			if path == "/health" {
				require.Empty(t, *op.Security, "%s is public", where)
				continue
			}
			require.NotEmpty(t, *op.Security, where)
			r := op.Responses.Value("401")
			require.NotNil(t, r, "%s declares no 401", where)
			require.Contains(t, r.Value.Content, "application/problem+json", where)
			require.Contains(t, r.Value.Content, "application/json", where)
		}
	}
}
