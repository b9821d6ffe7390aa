package framework_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/webhook"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/internal/freeport"
)

const obsToken = "observe-token-0123456789abcdef"

// syncBuffer is a log sink the server's goroutines share with the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// observed is a service served on loopback, its operator port and its
// JSON log.
type observed struct {
	base, ops string
	logs      *syncBuffer
}

// serveObserved serves a FromEnv service (JSON logs, metrics on a free
// port) with two webhook environments: "ml" at the root, which allows the
// echo task only, and "tight" under /tight, one request a minute per
// caller. tp, when not nil, is the App's TracerProvider.
func serveObserved(t *testing.T, tp trace.TracerProvider) observed {
	t.Helper()
	opsAddr := freeport.Addr(t)
	cfg, err := framework.ParseEnv(env(map[string]string{
		"TASKGATE_DATA_DIR":     t.TempDir(),
		"TASKGATE_AUTH_TOKENS":  obsToken + "=alice",
		"TASKGATE_NODE_GPUS":    "A100:1",
		"TASKGATE_METRICS_ADDR": opsAddr,
		"TASKGATE_LOG_FORMAT":   "json",
	}))
	require.NoError(t, err)
	logs := &syncBuffer{}
	ml := webhook.MustNew(webhook.Config{
		Settings:     environments.Settings{Name: "ml"},
		Groups:       []string{webhook.GroupAll},
		AllowedTasks: []string{"echo"},
	})
	tight := webhook.MustNew(webhook.Config{
		Settings: environments.Settings{Name: "tight", PathPrefix: "/tight",
			Limits: environments.Limits{RateLimit: 1, RateWindow: time.Minute}},
	})
	svc, err := framework.FromEnv(t.Context(), cfg, cfg.NewLogger(logs), demo.Registry(), ml, tight)
	require.NoError(t, err)
	svc.App.TracerProvider = tp
	base, _, _ := serve(t, svc.App)
	ops := "http://" + opsAddr
	require.Eventually(t, func() bool {
		resp, err := http.Get(ops + "/metrics")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 10*time.Millisecond)
	return observed{base: base, ops: ops, logs: logs}
}

// call sends a request and returns the response with its body read.
func call(t *testing.T, method, url, token, body string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// scrape reads /metrics in the Prometheus text format.
func scrape(t *testing.T, ops string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	resp, body := call(t, http.MethodGet, ops+"/metrics", "", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err)
	return fams, body
}

// sample sums the series of family name whose labels include want: a
// counter's or gauge's value, a histogram's count. -1 when the family is
// missing.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
	var sum float64
series:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue series
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// TestMetricsCountRealRequests scrapes the operator port of a running App
// after real requests: refusals by reason and environment, requests by
// route template (never the raw path), latency, in flight, the Go and
// process collectors, and OpenMetrics on request.
func TestMetricsCountRealRequests(t *testing.T) {
	t.Parallel()
	o := serveObserved(t, nil)

	for range 2 {
		resp, _ := call(t, http.MethodGet, o.base+"/me", "", "", nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}
	resp, _ := call(t, http.MethodGet, o.base+"/me", "not-a-known-token-0123456789", "", nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = call(t, http.MethodPost, o.base+"/run-task/demo/development/sleep", obsToken, `{"seconds":0}`, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	for _, want := range []int{http.StatusOK, http.StatusTooManyRequests} {
		resp, _ = call(t, http.MethodGet, o.base+"/tight/health", "", "", nil)
		require.Equal(t, want, resp.StatusCode)
	}
	resp, body := call(t, http.MethodPost, o.base+"/run-task/demo/development/echo", obsToken, `{"message":"hi"}`, nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
	var run struct{ Name string }
	require.NoError(t, json.Unmarshal([]byte(body), &run))
	resp, _ = call(t, http.MethodGet, o.base+"/run/"+run.Name, obsToken, "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = call(t, http.MethodGet, o.base+"/no/such/path-xyzzy", obsToken, "", nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	fams, text := scrape(t, o.ops)
	refusals := "taskgate_http_refusals_total"
	require.Equal(t, 2.0, sample(fams, refusals, map[string]string{"environment": "ml", "status": "401", "reason": "missing_credentials"}))
	require.Equal(t, 1.0, sample(fams, refusals, map[string]string{"environment": "ml", "status": "401", "reason": "invalid_token"}))
	require.Equal(t, 1.0, sample(fams, refusals, map[string]string{"environment": "ml", "status": "403", "reason": "forbidden_task"}))
	require.Equal(t, 1.0, sample(fams, refusals, map[string]string{"environment": "tight", "status": "429", "reason": "rate_limit"}))
	require.Equal(t, 5.0, sample(fams, refusals, nil))

	requests := "taskgate_http_requests_total"
	require.Equal(t, 1.0, sample(fams, requests, map[string]string{
		"environment": "ml", "route": "/run-task/{project}/{domain}/{name}", "method": "POST", "status": "2xx"}))
	require.Equal(t, 1.0, sample(fams, requests, map[string]string{
		"environment": "ml", "route": "/run/{name}", "method": "GET", "status": "2xx"}))
	require.Equal(t, 1.0, sample(fams, requests, map[string]string{"environment": "tight", "route": "/health", "status": "2xx"}))
	// Refused before routing (the three 401s), or routed nowhere (the 404).
	require.Equal(t, 4.0, sample(fams, requests, map[string]string{"environment": "ml", "route": "other", "status": "4xx"}))
	// The accepted echo and the forbidden sleep.
	require.Equal(t, 2.0, sample(fams, "taskgate_http_request_duration_seconds", map[string]string{
		"environment": "ml", "route": "/run-task/{project}/{domain}/{name}", "method": "POST"}))
	require.Equal(t, 0.0, sample(fams, "taskgate_http_requests_in_flight", nil))
	// Raw paths never become label values.
	require.NotContains(t, text, run.Name)
	require.NotContains(t, text, "xyzzy")
	// (Task IDs are label values of the run metrics, "demo/development/echo";
	// the raw path of the forbidden request never is.)
	require.NotContains(t, text, "/run-task/demo/")
	require.NotContains(t, text, "development/sleep")

	require.Positive(t, sample(fams, "go_goroutines", nil))
	require.Positive(t, sample(fams, "process_resident_memory_bytes", nil))

	resp, body = call(t, http.MethodGet, o.ops+"/metrics", "", "", http.Header{"Accept": {"application/openmetrics-text; version=1.0.0"}})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "application/openmetrics-text")
	require.True(t, strings.HasSuffix(body, "# EOF\n"), "OpenMetrics ends with # EOF")
	require.Contains(t, body, `taskgate_http_refusals_total{environment="ml",reason="missing_credentials",status="401"} 2.0`+"\n")
}

// TestOperatorPortIsApartFromThePublicOne: /metrics and pprof answer on
// the operator's port only; the public listener knows neither, even to a
// verified caller.
func TestOperatorPortIsApartFromThePublicOne(t *testing.T) {
	t.Parallel()
	o := serveObserved(t, nil)
	for _, p := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/heap", "/debug/vars"} {
		resp, _ := call(t, http.MethodGet, o.base+p, obsToken, "", nil)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, p)
	}
	// Under a prefix too (once: /tight allows one request a minute).
	resp, _ := call(t, http.MethodGet, o.base+"/tight/metrics", obsToken, "", nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, body := call(t, http.MethodGet, o.ops+"/debug/pprof/goroutine?debug=1", "", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, "goroutine profile:")
	resp, body = call(t, http.MethodGet, o.ops+"/debug/pprof/heap", "", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, strings.HasPrefix(body, "\x1f\x8b"), "a gzipped profile")
	// The command line may hold a secret.
	resp, _ = call(t, http.MethodGet, o.ops+"/debug/pprof/cmdline", "", "", nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

// accessLines returns the access log lines (msg "request") of a JSON log.
func accessLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		if m["msg"] == "request" {
			lines = append(lines, m)
		}
	}
	return lines
}

// TestAccessLogAndRequestIDs: one JSON line per request with its id,
// environment, route template, method, status, duration, bytes and
// subject, never the token or the query string; X-Request-Id on every
// response, an incoming valid one kept, anything else replaced.
func TestAccessLogAndRequestIDs(t *testing.T) {
	t.Parallel()
	o := serveObserved(t, nil)
	resp, body := call(t, http.MethodPost, o.base+"/run-task/demo/development/echo?note=query-secret", obsToken,
		`{"message":"hi"}`, http.Header{"X-Request-Id": {"client-chosen-id-42"}})
	require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
	require.Equal(t, "client-chosen-id-42", resp.Header.Get("X-Request-Id"))

	for _, bad := range []string{"has space", strings.Repeat("x", 129), "tab\there", "ünïcode"} {
		resp, _ = call(t, http.MethodGet, o.base+"/health", "", "", http.Header{"X-Request-Id": {bad}})
		id := resp.Header.Get("X-Request-Id")
		require.NotEmpty(t, id)
		require.NotEqual(t, bad, id)
	}
	resp, _ = call(t, http.MethodGet, o.base+"/me", "", "", nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	refusedID := resp.Header.Get("X-Request-Id")
	require.NotEmpty(t, refusedID, "refusals carry a request id too")

	var submit, refused map[string]any
	require.Eventually(t, func() bool {
		submit, refused = nil, nil
		for _, l := range accessLines(t, o.logs.String()) {
			switch l["request_id"] {
			case "client-chosen-id-42":
				submit = l
			case refusedID:
				refused = l
			}
		}
		return submit != nil && refused != nil
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, "INFO", submit["level"])
	require.Equal(t, "ml", submit["environment"])
	require.Equal(t, "/run-task/{project}/{domain}/{name}", submit["route"])
	require.Equal(t, "POST", submit["method"])
	require.EqualValues(t, http.StatusAccepted, submit["status"])
	require.EqualValues(t, len(body), submit["bytes"])
	require.Equal(t, "alice", submit["subject"])
	require.GreaterOrEqual(t, submit["duration_ms"], 0.0)
	require.NotContains(t, submit, "trace_id", "no span without a TracerProvider")
	require.Equal(t, "", refused["subject"])
	require.EqualValues(t, http.StatusUnauthorized, refused["status"])

	log := o.logs.String()
	require.NotContains(t, log, obsToken)
	require.NotContains(t, log, "query-secret")
}

// TestServerSpanContinuesIncomingTrace: with an in-memory exporter, a
// request carrying a W3C traceparent gets a server span in that trace,
// child of the caller's span, named by its route template; the access log
// line names the trace.
func TestServerSpanContinuesIncomingTrace(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	o := serveObserved(t, tp)

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	resp, body := call(t, http.MethodPost, o.base+"/run-task/demo/development/echo", obsToken, `{"message":"hi"}`,
		http.Header{"Traceparent": {"00-" + traceID + "-" + parentID + "-01"}, "X-Request-Id": {"traced-1"}})
	require.Equal(t, http.StatusAccepted, resp.StatusCode, body)

	var span tracetest.SpanStub
	require.Eventually(t, func() bool {
		for _, s := range exp.GetSpans() {
			if s.SpanKind == trace.SpanKindServer && s.SpanContext.TraceID().String() == traceID {
				span = s
				return true
			}
		}
		return false
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, "POST /run-task/{project}/{domain}/{name}", span.Name)
	require.Equal(t, parentID, span.Parent.SpanID().String())
	require.True(t, span.Parent.IsRemote())
	attrs := map[string]string{}
	for _, a := range span.Attributes {
		attrs[string(a.Key)] = a.Value.String()
	}
	require.Equal(t, "/run-task/{project}/{domain}/{name}", attrs["http.route"])
	require.Equal(t, "ml", attrs["taskgate.environment"])
	require.Equal(t, "202", attrs["http.response.status_code"])

	require.Eventually(t, func() bool {
		for _, l := range accessLines(t, o.logs.String()) {
			if l["request_id"] == "traced-1" {
				return l["trace_id"] == traceID
			}
		}
		return false
	}, 5*time.Second, 10*time.Millisecond)
}

// TestHeadWhereGetAndDocsWithSlash: the App's own routes answer HEAD as
// GET does (with no body), and /docs/ serves the docs page like /docs,
// without credentials, at the root and under a path prefix.
func TestHeadWhereGetAndDocsWithSlash(t *testing.T) {
	t.Parallel()
	o := serveObserved(t, nil)
	for _, p := range []string{"/health", "/docs", "/docs/", "/openapi.json", "/openapi.yaml", "/docs/assets/init.js"} {
		get, getBody := call(t, http.MethodGet, o.base+p, "", "", nil)
		require.Equal(t, http.StatusOK, get.StatusCode, p)
		require.NotEmpty(t, getBody)
		head, headBody := call(t, http.MethodHead, o.base+p, "", "", nil)
		require.Equal(t, http.StatusOK, head.StatusCode, "HEAD "+p)
		require.Empty(t, headBody)
		require.Equal(t, get.Header.Get("Content-Type"), head.Header.Get("Content-Type"), p)
	}
	// Under a path prefix too (once: /tight allows one request a minute).
	resp, page := call(t, http.MethodGet, o.base+"/tight/docs/", "", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, page, `data-spec="../openapi.json"`)
	// A HEAD's line has no bytes (net/http drops them); /docs/ counts as the docs.
	var headDocs map[string]any
	require.Eventually(t, func() bool {
		for _, l := range accessLines(t, o.logs.String()) {
			if l["method"] == "HEAD" && l["route"] == "/docs" && l["environment"] == "ml" {
				headDocs = l
			}
		}
		return headDocs != nil
	}, 5*time.Second, 10*time.Millisecond)
	require.EqualValues(t, 0, headDocs["bytes"])
	head, _ := call(t, http.MethodHead, o.base+"/ready", "", "", nil)
	require.Equal(t, http.StatusOK, head.StatusCode)

	_, page = call(t, http.MethodGet, o.base+"/docs/", "", "", nil)
	require.Contains(t, page, `src="../docs/assets/swagger-ui-bundle.js"`)
	_, page = call(t, http.MethodGet, o.base+"/docs", "", "", nil)
	require.Contains(t, page, `data-spec="openapi.json"`)
	// Only the canonical spelling skips authentication.
	resp, _ = call(t, http.MethodGet, o.base+"/docs//", "", "", nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	// HEAD of an authenticated GET route needs credentials like GET.
	resp, _ = call(t, http.MethodHead, o.base+"/me", "", "", nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = call(t, http.MethodHead, o.base+"/me", obsToken, "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestParseEnvObservability(t *testing.T) {
	t.Parallel()
	cfg, err := framework.ParseEnv(env(nil))
	require.NoError(t, err)
	require.Equal(t, framework.DefaultMetricsAddr, cfg.MetricsAddr)
	require.Equal(t, "text", cfg.LogFormat)
	require.Equal(t, slog.LevelInfo, cfg.LogLevel)
	require.False(t, cfg.Traces)

	cfg, err = framework.ParseEnv(env(map[string]string{
		"TASKGATE_METRICS_ADDR": "0.0.0.0:9100", "TASKGATE_LOG_FORMAT": "json", "TASKGATE_LOG_LEVEL": "DEBUG"}))
	require.NoError(t, err)
	require.Equal(t, "0.0.0.0:9100", cfg.MetricsAddr)
	require.Equal(t, "json", cfg.LogFormat)
	require.Equal(t, slog.LevelDebug, cfg.LogLevel)
	var out bytes.Buffer
	cfg.NewLogger(&out).Debug("hello", "k", "v")
	require.JSONEq(t, `{"level":"DEBUG","msg":"hello","k":"v"}`, dropTime(t, out.String()))

	for vars, traces := range map[[2]string]bool{
		{"OTEL_TRACES_EXPORTER", "otlp"}:                          true,
		{"OTEL_TRACES_EXPORTER", "console"}:                       true,
		{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"}:  true,
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "127.0.0.1:4317"}:  true,
		{"OTEL_TRACES_EXPORTER", "none"}:                          false,
		{"OTEL_SERVICE_NAME", "svc"}:                              false,
		{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "127.0.0.1:4317"}: false,
	} {
		cfg, err := framework.ParseEnv(env(map[string]string{vars[0]: vars[1]}))
		require.NoError(t, err)
		require.Equal(t, traces, cfg.Traces, "%s=%s", vars[0], vars[1])
	}
	cfg, err = framework.ParseEnv(env(map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}))
	require.NoError(t, err)
	require.False(t, cfg.Traces)

	for _, vars := range []map[string]string{
		{"TASKGATE_LOG_FORMAT": "logfmt"},
		{"TASKGATE_LOG_LEVEL": "trace"},
	} {
		_, err := framework.ParseEnv(env(vars))
		for k := range vars {
			require.ErrorContains(t, err, k)
		}
	}
}

// dropTime removes the time field of a JSON log line.
func dropTime(t *testing.T, line string) string {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(line), &m))
	delete(m, "time")
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return string(b)
}

// TestLoadEnvEmptyMetricsAddrTurnsThemOff: set but empty is off, unset
// is the default (LoadEnv tells them apart; ParseEnv cannot).
func TestLoadEnvEmptyMetricsAddrTurnsThemOff(t *testing.T) {
	t.Setenv("TASKGATE_METRICS_ADDR", "")
	cfg, err := framework.LoadEnv()
	require.NoError(t, err)
	require.Empty(t, cfg.MetricsAddr)
}

// TestFromEnvTracesWhenAsked: the OTEL_* variables give the App a tracer
// provider, which the App's stop shuts down; without them it has none.
func TestFromEnvTracesWhenAsked(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	cfg, err := framework.LoadEnv()
	require.NoError(t, err)
	require.True(t, cfg.Traces)
	cfg.DataDir, cfg.NodeGPUs, cfg.MetricsAddr = t.TempDir(), "A100:1", ""
	svc, err := framework.FromEnv(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), demo.Registry(), demo.Webhook())
	require.NoError(t, err)
	tp, ok := svc.App.TracerProvider.(*sdktrace.TracerProvider)
	require.True(t, ok, "an SDK provider")
	require.NoError(t, svc.App.Start(t.Context()))
	require.NoError(t, svc.App.Stop(t.Context()))
	// Shut down: its tracers make spans that record nothing.
	_, span := tp.Tracer("t").Start(t.Context(), "after")
	require.False(t, span.IsRecording())

	cfg.Traces = false
	svc, err = framework.FromEnv(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), demo.Registry(), demo.Webhook())
	require.NoError(t, err)
	require.Nil(t, svc.App.TracerProvider)
	require.NoError(t, svc.Store.Close())
}
