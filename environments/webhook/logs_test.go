package webhook_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/internal/envtest"
	"github.com/taskgate/taskgate/environments/webhook"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/framework/frameworktest"
	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/store"
	"github.com/taskgate/taskgate/tasks/store/sqlite"
	"github.com/taskgate/taskgate/tasks/taskexec"
)

// progressCounter counts the progress writes that reach the store.
type progressCounter struct {
	store.Store
	writes atomic.Int64
}

func (s *progressCounter) SetProgress(ctx context.Context, ps []store.ProgressUpdate) error {
	s.writes.Add(1)
	return s.Store.SetProgress(ctx, ps)
}

type logsIn struct {
	Steps int `json:"steps"`
}

type logsOut struct{}

// newLogsStack serves a real App over a real SQLite file on loopback with
// two tasks: logs/test/steps writes logger lines and subprocess output,
// logs/test/hot reports progress 100k times, then waits for gate.
func newLogsStack(t *testing.T, gate chan struct{}) (*envtest.Stack, *progressCounter) {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	sq, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), sqlite.FileName))
	require.NoError(t, err)
	st := &progressCounter{Store: sq}
	steps := tasks.MustDefine("logs", "test", "steps", func(ctx context.Context, in logsIn) (logsOut, error) {
		for i := 1; i <= in.Steps; i++ {
			tasks.Logger(ctx).Info(fmt.Sprintf("step %d", i), "step", i)
			if err := taskexec.Run(ctx, taskexec.Command(ctx, "sh", "-c", fmt.Sprintf("echo out %d", i))); err != nil {
				return logsOut{}, err
			}
			if err := taskexec.Run(ctx, taskexec.Command(ctx, "sh", "-c", fmt.Sprintf("echo err %d >&2", i))); err != nil {
				return logsOut{}, err
			}
			time.Sleep(100 * time.Millisecond) // the follower reads while the run goes on
		}
		return logsOut{}, nil
	}, &tasks.Options{Resources: tasks.Resources{CPU: "100m"}, Retry: &tasks.NoRetry})
	hot := tasks.MustDefine("logs", "test", "hot", func(ctx context.Context, _ logsIn) (logsOut, error) {
		for i := 1; i <= 100_000; i++ {
			tasks.Progress(ctx, float64(i), 100_000, "item")
		}
		select {
		case <-gate:
		case <-ctx.Done():
		}
		return logsOut{}, nil
	}, &tasks.Options{Resources: tasks.Resources{CPU: "100m"}, Retry: &tasks.NoRetry})
	reg := tasks.NewRegistry()
	reg.MustRegister(steps, hot)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	d, err := dispatch.New(dispatch.Config{
		Store: st, Registry: reg, Logger: logger,
		Node: dispatch.NodeConfig{ID: "logs-node", MilliCPU: 8000, MemoryBytes: 1 << 30},
	})
	require.NoError(t, err)
	auth, err := middleware.ParseStaticTokens(envtest.WhAlice + "=alice," + envtest.WhBob + "=bob")
	require.NoError(t, err)
	app := &framework.App{
		Logger: logger, Registry: reg, Dispatcher: d, Authenticator: auth,
		Environments: []environments.Environment{webhook.MustNew(webhook.Config{
			Settings: environments.Settings{Name: "logs"}, Groups: []string{webhook.GroupAll},
		})},
		OnStart: []func(context.Context) error{d.Start},
		OnStop:  []func(context.Context) error{func(ctx context.Context) error { return errors.Join(d.Close(ctx), st.Close()) }},
	}
	return &envtest.Stack{T: t, Base: frameworktest.Serve(t, app)}, st
}

// sse is one Server-Sent Event.
type sse struct{ id, event, data string }

// openSSE sends a GET with token and headers and returns the events as
// they come; the channel closes when the stream ends.
func openSSE(t *testing.T, url, token string, headers ...string) (<-chan sse, *http.Response) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	ch := make(chan sse, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		var ev sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.event != "" || ev.data != "" {
					ch <- ev
				}
				ev = sse{}
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return ch, resp
}

// collect reads events until the stream ends.
func collect(t *testing.T, ch <-chan sse) []sse {
	t.Helper()
	var out []sse
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, ev)
		case <-timeout:
			t.Fatalf("stream did not end; got %v", out)
		}
	}
}

func TestFollowRunLogsStreamsLoggerAndSubprocessLinesUntilTheRunEnds(t *testing.T) {
	t.Parallel()
	s, _ := newLogsStack(t, nil)
	r := s.Do(http.MethodPost, "/run-task/logs/test/steps", envtest.WhAlice, `{"steps":3}`)
	require.Equal(t, http.StatusAccepted, r.Status, r.Raw)
	name := r.Body["name"].(string)

	events, resp := openSSE(t, s.Base+"/run/"+name+"/logs?follow=1", envtest.WhAlice)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	got := collect(t, events)
	require.NotEmpty(t, got)
	end := got[len(got)-1]
	require.Equal(t, "end", end.event, "the stream says the run ended")
	require.JSONEq(t, `{"phase":"succeeded"}`, end.data)

	var lines []string
	var lastID string
	for _, ev := range got[:len(got)-1] {
		require.Equal(t, "log", ev.event)
		require.NotEmpty(t, ev.id)
		var l webhook.RunLogLine
		require.NoError(t, json.Unmarshal([]byte(ev.data), &l))
		require.Equal(t, ev.id, fmt.Sprint(l.Seq), "the event id is the line's seq")
		require.Equal(t, 1, l.Attempt)
		require.False(t, l.Time.IsZero())
		lines = append(lines, l.Stream+": "+l.Message)
		lastID = ev.id
	}
	require.Equal(t, []string{
		"log: step 1", "stdout: out 1", "stderr: err 1",
		"log: step 2", "stdout: out 2", "stderr: err 2",
		"log: step 3", "stdout: out 3", "stderr: err 3",
	}, lines)

	// Resuming after the last line gives the end at once; after the first,
	// the rest.
	resumed := collect(t, first(openSSE(t, s.Base+"/run/"+name+"/logs", envtest.WhAlice, "Accept", "text/event-stream", "Last-Event-ID", lastID)))
	require.Len(t, resumed, 1)
	require.Equal(t, "end", resumed[0].event)
	resumed = collect(t, first(openSSE(t, s.Base+"/run/"+name+"/logs?follow=1", envtest.WhAlice, "Last-Event-ID", got[0].id)))
	require.Len(t, resumed, len(got)-1)

	// Without follow: pages of JSON, with the attributes kept.
	page := s.Do(http.MethodGet, "/run/"+name+"/logs?limit=2", envtest.WhAlice, "")
	require.Equal(t, http.StatusOK, page.Status, page.Raw)
	require.Equal(t, true, page.Body["done"])
	pl := page.Body["lines"].([]any)
	require.Len(t, pl, 2)
	line0 := pl[0].(map[string]any)
	require.Equal(t, "log", line0["stream"])
	require.Equal(t, map[string]any{"step": float64(1)}, line0["attrs"])
	require.Equal(t, "stdout", pl[1].(map[string]any)["stream"])
	require.Nil(t, pl[1].(map[string]any)["attrs"], "the stream is the line's field, not an attribute")
	next := page.Body["next_after"].(float64)
	rest := s.Do(http.MethodGet, fmt.Sprintf("/run/%s/logs?after=%d", name, int64(next)), envtest.WhAlice, "")
	require.Len(t, rest.Body["lines"].([]any), 7)
	require.Equal(t, http.StatusBadRequest, s.Do(http.MethodGet, "/run/"+name+"/logs?follow=1", envtest.WhAlice, "", "Last-Event-ID", "x").Status)
}

func first[A, B any](a A, _ B) A { return a }

func TestRunLogsOfSomeoneElsesRunAre404(t *testing.T) {
	t.Parallel()
	s, _ := newLogsStack(t, nil)
	r := s.Do(http.MethodPost, "/run-task/logs/test/steps", envtest.WhAlice, `{"steps":1}`)
	require.Equal(t, http.StatusAccepted, r.Status, r.Raw)
	name := r.Body["name"].(string)
	s.WaitDone(name, envtest.WhAlice)
	require.Equal(t, http.StatusOK, s.Do(http.MethodGet, "/run/"+name+"/logs", envtest.WhAlice, "").Status)
	for _, path := range []string{"/run/" + name + "/logs", "/run/" + name + "/logs?follow=1", "/run/nosuchrun/logs"} {
		got := s.Do(http.MethodGet, path, envtest.WhBob, "")
		require.Equal(t, http.StatusNotFound, got.Status, path)
		require.NotContains(t, got.Raw, "step 1")
	}
	require.Equal(t, http.StatusUnauthorized, s.Do(http.MethodGet, "/run/"+name+"/logs", "", "").Status)
}

func TestProgressIsOnTheRunAndItsEventsAndAHotLoopWritesLittle(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	s, st := newLogsStack(t, gate)
	r := s.Do(http.MethodPost, "/run-task/logs/test/hot", envtest.WhAlice, `{"steps":0}`)
	require.Equal(t, http.StatusAccepted, r.Status, r.Raw)
	name := r.Body["name"].(string)
	events, _ := openSSE(t, s.Base+"/run/"+name+"/events", envtest.WhAlice)

	want := map[string]any{"done": float64(100_000), "total": float64(100_000), "message": "item"}
	var status envtest.Reply
	require.Eventually(t, func() bool {
		status = s.Do(http.MethodGet, "/run/"+name, envtest.WhAlice, "")
		p, _ := status.Body["progress"].(map[string]any)
		return p != nil && p["done"] == want["done"]
	}, 20*time.Second, 20*time.Millisecond, "the latest progress is on GET /run")
	p := status.Body["progress"].(map[string]any)
	require.Equal(t, want["total"], p["total"])
	require.Equal(t, want["message"], p["message"])
	require.NotEmpty(t, p["updated_at"])
	list := s.Do(http.MethodGet, "/runs", envtest.WhAlice, "")
	require.Equal(t, want["done"], list.Body["runs"].([]any)[0].(map[string]any)["progress"].(map[string]any)["done"], "and on GET /runs")

	var progress []sse
	timeout := time.After(20 * time.Second)
	for len(progress) == 0 || !strings.Contains(progress[len(progress)-1].data, `"done":100000`) {
		select {
		case ev := <-events:
			if ev.event == "progress" {
				progress = append(progress, ev)
			}
		case <-timeout:
			t.Fatalf("no progress event with the last report; got %v", progress)
		}
	}
	close(gate)
	s.WaitDone(name, envtest.WhAlice)
	rest := collect(t, events)
	require.Equal(t, "phase", rest[len(rest)-1].event)

	// 100k reports, but the store saw one write a second at most (the
	// loop takes well under one on an idle machine) plus the last: a
	// loose bound that still fails by orders of magnitude without the
	// rate limit.
	writes := st.writes.Load()
	t.Logf("progress writes for 100000 reports: %d; progress events: %d", writes, len(progress))
	require.GreaterOrEqual(t, writes, int64(1))
	require.LessOrEqual(t, writes, int64(10))
	require.LessOrEqual(t, len(progress), 10)
}
