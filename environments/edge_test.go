package environments_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/internal/envtest"
	"github.com/taskgate/taskgate/environments/webhook"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/framework/frameworktest"
	"github.com/taskgate/taskgate/middleware"
)

// post sends body with exactly the given Content-Type ("" sends none) and
// extra headers (added, so a name may repeat).
func post(t *testing.T, u, token, ct, body string, header ...string) envtest.Reply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, u, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	return envtest.RoundTrip(t, req)
}

// utf16 is s in UTF-16LE, which is not JSON between systems (RFC 8259).
func utf16(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteByte(byte(r))
		b.WriteByte(0)
	}
	return b.String()
}

// EchoBodyInput is an endpoint's JSON body.
type EchoBodyInput struct {
	Body struct {
		Message string `json:"message" maxLength:"100"`
	}
}

// EchoBodyOutput sends the message back.
type EchoBodyOutput struct {
	Body struct {
		Message string `json:"message"`
	}
}

func echoBody(_ context.Context, in *EchoBodyInput) (*EchoBodyOutput, error) {
	out := &EchoBodyOutput{}
	out.Body.Message = in.Body.Message
	return out, nil
}

// TestBodyMustBeJSONInUTF8: a body whose Content-Type is not JSON, or
// whose charset is not UTF-8, is 415 on the webhook environment and on a
// function endpoint; no Content-Type is taken as JSON, and an empty body is
// never refused.
func TestBodyMustBeJSONInUTF8(t *testing.T) {
	t.Parallel()
	app := environments.MustAppEnvironment(environments.AppConfig{Settings: environments.Settings{Name: "app", PathPrefix: "/app"}})
	environments.Endpoint(app, "echo-body", echoBody, nil)
	s := envtest.NewStack(t, demo.Webhook(), app)
	runTask := s.Base + "/run-task/demo/development/echo"
	tests := []struct {
		name, ct, body string
		status         int
	}{
		{"json", "application/json", `{"message":"hi"}`, http.StatusAccepted},
		{"json utf-8", "application/json; charset=UTF-8", `{"message":"hi"}`, http.StatusAccepted},
		{"+json", "application/vnd.example+json", `{"message":"hi"}`, http.StatusAccepted},
		{"no type", "", `{"message":"hi"}`, http.StatusAccepted},
		{"xml", "application/xml", `<message>hi</message>`, http.StatusUnsupportedMediaType},
		{"json in xml clothes", "text/xml", `{"message":"hi"}`, http.StatusUnsupportedMediaType},
		{"form", "application/x-www-form-urlencoded", `{"message":"hi"}`, http.StatusUnsupportedMediaType},
		{"utf-16", "application/json; charset=utf-16", utf16(`{"message":"hi"}`), http.StatusUnsupportedMediaType},
		{"latin-1", "application/json; charset=iso-8859-1", `{"message":"hi"}`, http.StatusUnsupportedMediaType},
		{"malformed", "application/json; charset", `{"message":"hi"}`, http.StatusUnsupportedMediaType},
	}
	for _, tt := range tests {
		for _, u := range []string{runTask, s.Base + "/app/echo-body"} {
			want := tt.status
			if want == http.StatusAccepted && strings.HasSuffix(u, "echo-body") {
				want = http.StatusOK
			}
			r := post(t, u, envtest.WhAlice, tt.ct, tt.body)
			require.Equal(t, want, r.Status, "%s %s: %s", tt.name, u, r.Raw)
			if want == http.StatusUnsupportedMediaType {
				require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"), tt.name)
			}
		}
	}
	// Abort takes no body: curl -X POST -d '' sends a form type with none.
	name := post(t, runTask, envtest.WhAlice, "", `{"message":"hi"}`).Body["name"].(string)
	ab := post(t, s.Base+"/run/"+name+"/abort", envtest.WhAlice, "application/x-www-form-urlencoded", "")
	require.Contains(t, []int{http.StatusAccepted, http.StatusConflict}, ab.Status, ab.Raw)
}

// TestPreferWaitClampsToTheMaximum: a wait too long to hold (an exponent,
// Infinity, digits past any integer) is the maximum, with
// Preference-Applied; what is not a number of seconds is ignored (RFC
// 7240), not an error and no wait.
func TestPreferWaitClampsToTheMaximum(t *testing.T) {
	t.Parallel()
	wh := webhook.MustNew(webhook.Config{
		Settings: environments.Settings{Name: "quickstart"},
		Groups:   []string{webhook.GroupAll},
		MaxWait:  time.Second,
	})
	s := envtest.NewStack(t, wh)
	for _, prefer := range []string{"wait=1e10", "wait=Inf", "wait=+Infinity", "wait=" + strings.Repeat("9", 400), `wait="3600"`, "respond-async, wait=99999999999999999999"} {
		r := s.Do("POST", "/run-task/demo/development/sleep", envtest.WhAlice, `{"seconds":30}`, "Prefer", prefer)
		require.Equal(t, http.StatusAccepted, r.Status, "%s: %s", prefer, r.Raw)
		require.Equal(t, "wait=1", r.Header.Get("Preference-Applied"), prefer)
	}
	for _, prefer := range []string{"wait=NaN", "wait=-5", "wait=-Inf", "wait=soon", "wait=", "wait=0"} {
		r := s.Do("POST", "/run-task/demo/development/sleep", envtest.WhAlice, `{"seconds":30}`, "Prefer", prefer)
		require.Equal(t, http.StatusAccepted, r.Status, "%s: %s", prefer, r.Raw)
		require.Empty(t, r.Header.Get("Preference-Applied"), prefer)
	}
}

// TestIdempotencyKeyCoversTheWholeRequest: a retry with the same key but
// another callback or priority is 409, like one with another body; the
// key may be sent once.
func TestIdempotencyKeyCoversTheWholeRequest(t *testing.T) {
	t.Parallel()
	s := envtest.NewStack(t)
	hook := func(p string) string { return "&webhook=" + url.QueryEscape("https://127.0.0.1:9/"+p) }
	first := s.Do("POST", "/run-task/demo/development/echo?priority=1"+hook("a"), envtest.WhAlice, `{"message":"a"}`, "Idempotency-Key", "k1")
	require.Equal(t, http.StatusAccepted, first.Status, first.Raw)
	again := s.Do("POST", "/run-task/demo/development/echo?priority=1"+hook("a"), envtest.WhAlice, `{"message":"a"}`, "Idempotency-Key", "k1")
	require.Equal(t, first.Body["name"], again.Body["name"])
	for name, query := range map[string]string{
		"other webhook":  "?priority=1" + hook("b"),
		"no webhook":     "?priority=1",
		"other priority": "?priority=2" + hook("a"),
		"other events":   "?priority=1" + hook("a") + "&webhook_events_filter=start",
	} {
		r := s.Do("POST", "/run-task/demo/development/echo"+query, envtest.WhAlice, `{"message":"a"}`, "Idempotency-Key", "k1")
		require.Equal(t, http.StatusConflict, r.Status, "%s: %s", name, r.Raw)
	}
	twice := post(t, s.Base+"/run-task/demo/development/echo", envtest.WhAlice, "application/json", `{"message":"a"}`,
		"Idempotency-Key", "k2", "Idempotency-Key", "k3")
	require.Equal(t, http.StatusBadRequest, twice.Status, twice.Raw)
	require.Contains(t, twice.Raw, `"location":"header.Idempotency-Key"`)
}

// TestErrorBodiesQuoteShortPrefixes: a 422 names what was wrong without
// echoing a huge rejected name or value whole.
func TestErrorBodiesQuoteShortPrefixes(t *testing.T) {
	t.Parallel()
	app := environments.MustAppEnvironment(environments.AppConfig{Settings: environments.Settings{Name: "app", PathPrefix: "/app"}})
	environments.Endpoint(app, "echo-body", echoBody, nil)
	s := envtest.NewStack(t, demo.Webhook(), app)
	huge := strings.Repeat("x", 9<<20)
	big := huge[:900<<10] // under an endpoint's default body limit (1 MiB)
	for _, tt := range []struct{ path, body string }{
		{"/run-task/demo/development/echo", `{"message":"hi","` + huge + `":1}`},             // unknown property
		{"/run-task/demo/development/echo", `{"message":"` + huge + `"}`},                    // too long
		{"/run-task/demo/development/echo", `{"message":["` + huge + `"]}`},                  // wrong type
		{"/app/echo-body", `{"message":"hi","` + big + `":1}`},                               // unknown property
		{"/app/echo-body", `{"message":"` + big + `"}`},                                      // too long
		{"/run-task/demo/development/echo?webhook=https://127.0.0.1/" + huge[:50<<10], "{}"}, // too long a query
	} {
		r := post(t, s.Base+tt.path, envtest.WhAlice, "application/json", tt.body)
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, "%s: %.300s", tt.path, r.Raw)
		require.Less(t, len(r.Raw), 4096, "%s: %.300s", tt.path, r.Raw)
		require.Contains(t, r.Raw, "bytes)", "%s: the cut is not marked: %s", tt.path, r.Raw)
	}
}

// syncBuffer is a log sink that handlers may write while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// SecretOutput is never sent: the endpoints that return it fail.
type SecretOutput struct{ Body struct{} }

// TestInternalErrorsStayInternal: the 500 of a function endpoint or an
// app's operation says "internal error" and the request id; the error's
// text goes to the log, under that id, and never to the caller.
func TestInternalErrorsStayInternal(t *testing.T) {
	t.Parallel()
	secret := errors.New("secret-internal-detail: db password is hunter2")
	app := environments.MustAppEnvironment(environments.AppConfig{
		Settings: environments.Settings{Name: "app"},
		Register: func(api huma.API) {
			huma.Get(api, "/operation", func(context.Context, *struct{}) (*SecretOutput, error) {
				return nil, huma.Error500InternalServerError("lookup failed", secret)
			})
		},
	})
	environments.Endpoint(app, "endpoint", func(context.Context, *struct{}) (*SecretOutput, error) {
		return nil, secret
	}, nil)
	auth, err := middleware.NewStaticTokens(middleware.StaticToken{Token: envtest.AppAlice, Subject: "alice"})
	require.NoError(t, err)
	var log syncBuffer
	base := frameworktest.Serve(t, &framework.App{
		Environments:  []environments.Environment{app},
		Authenticator: auth,
		Logger:        slog.New(slog.NewJSONHandler(&log, nil)),
	})
	for _, path := range []string{"/endpoint", "/operation"} {
		r := envtest.Send(t, http.MethodGet, base+path, envtest.AppAlice, "")
		r.Expect(t, http.StatusInternalServerError)
		require.NotContains(t, r.Body, "hunter2", path)
		require.NotContains(t, r.Body, "secret-internal-detail", path)
		var p huma.ErrorModel
		require.NoError(t, json.Unmarshal([]byte(r.Body), &p))
		require.Empty(t, p.Errors, path)
		_, id, ok := strings.Cut(p.Detail, "request id ")
		require.True(t, ok, "%s: no request id in %s", path, r.Body)
		var logged bool
		for line := range strings.Lines(log.String()) {
			if strings.Contains(line, `"request_id":"`+id+`"`) && strings.Contains(line, "secret-internal-detail: db password is hunter2") {
				logged = true
			}
		}
		require.True(t, logged, "%s: the error is not logged with request id %s:\n%s", path, id, log.String())
	}
}

// TestErrorsFollowContentNegotiation: an error is application/problem+json
// when the client accepts it or says nothing, else the same body as the
// application/json it asked for (fal's client asks for that alone).
func TestErrorsFollowContentNegotiation(t *testing.T) {
	t.Parallel()
	s := envtest.NewStack(t)
	tests := []struct{ accept, want string }{
		{"", "application/problem+json"},
		{"*/*", "application/problem+json"},
		{"application/problem+json", "application/problem+json"},
		{"application/json, application/problem+json", "application/problem+json"},
		{"application/json", "application/json"},
		{"application/json;q=1, application/problem+json;q=0.5", "application/json"},
	}
	for _, tt := range tests {
		var headers []string
		if tt.accept != "" {
			headers = []string{"Accept", tt.accept}
		}
		r := s.Do("POST", "/run-task/demo/development/nope", envtest.WhAlice, `{}`, headers...)
		require.Equal(t, http.StatusNotFound, r.Status, r.Raw)
		require.Equal(t, tt.want, r.Header.Get("Content-Type"), "Accept: %s", tt.accept)
		require.Equal(t, float64(http.StatusNotFound), r.Body["status"], "the same body: %s", r.Raw)
		r = s.Do("POST", "/run-task/demo/development/echo", envtest.WhAlice, `{"message":1}`, headers...)
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, r.Raw)
		require.Equal(t, tt.want, r.Header.Get("Content-Type"), "Accept: %s", tt.accept)
	}
}
