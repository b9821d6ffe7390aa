package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/taskgate/taskgate/environments/internal/edge"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
)

// RunLogLine is one line of GET /run/{name}/logs.
type RunLogLine struct {
	Seq     int64           `json:"seq" doc:"Orders the lines; the event id when following. Grows, not by one."`
	Time    time.Time       `json:"time"`
	Level   string          `json:"level" example:"INFO"`
	Attempt int             `json:"attempt" doc:"The attempt that wrote the line, from 1."`
	Stream  string          `json:"stream" enum:"log,stdout,stderr" doc:"log: the task's logger (tasks.Logger); stdout, stderr: a subprocess's output."`
	Message string          `json:"message"`
	Attrs   json.RawMessage `json:"attrs,omitempty" doc:"The line's attributes, a JSON object."`
}

// RunLogEnd is the last event of a followed GET /run/{name}/logs.
type RunLogEnd struct {
	Phase tasks.Phase `json:"phase" doc:"The run's terminal phase."`
}

// RunLogsInput is GET /run/{name}/logs.
type RunLogsInput struct {
	RunPath
	After       int64  `query:"after" minimum:"0" doc:"Only lines with a seq above this: next_after of the previous page."`
	Limit       int    `query:"limit" minimum:"1" maximum:"1000" default:"1000"`
	Follow      bool   `query:"follow" doc:"Stream the lines as Server-Sent Events until the run ends (also with Accept: text/event-stream)."`
	Accept      string `header:"Accept"`
	LastEventID string `header:"Last-Event-ID" doc:"Following: resume after this line's seq."`
}

// RunLogs is GET /run/{name}/logs without follow.
type RunLogs struct {
	Name  string       `json:"name"`
	Lines []RunLogLine `json:"lines"`
	// NextAfter is the after of the next page.
	NextAfter int64 `json:"next_after" doc:"The after of the next page (the last line's seq), or the request's after when no line came."`
	Done      bool  `json:"done" doc:"The run has ended: no line will be added."`
}

// Follow's store polling: a run's lines reach the store in batches (every
// 200 ms while it runs), so a follower reads at that pace while lines come
// and backs off to logsPollMax while none do; a phase change wakes it.
const (
	logsPollMin = 250 * time.Millisecond
	logsPollMax = 2 * time.Second
)

// progressPoll is how often GET /run/{name}/events looks for new
// progress: about the pace at which the node agent stores it.
const progressPoll = time.Second

func (h *handlers) registerLogs(api huma.API) {
	o := huma.Operation{
		OperationID: "run-logs", Method: http.MethodGet, Path: "/run/{name}/logs", Tags: []string{GroupRun},
		Summary: "Get or follow a run's logs",
		Description: "The lines the run's attempts wrote, oldest first: the task's logger (`stream` log) and its " +
			"subprocesses' output (stdout, stderr). Pages of at most `limit` lines after `after`. With `follow=1` " +
			"(or `Accept: text/event-stream`), Server-Sent Events: one `log` event per line, its id the line's seq " +
			"(send `Last-Event-ID` to resume), then one `end` event with the run's phase once it has ended. " +
			"Someone else's run is 404.",
		Security: bearer,
		Errors:   []int{http.StatusBadRequest, http.StatusNotFound, http.StatusServiceUnavailable},
	}
	lines := api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[RunLogs](), true, "RunLogs")
	o.Responses = map[string]*huma.Response{"200": {
		Description: "The lines, or an event stream when following.",
		Content: map[string]*huma.MediaType{
			"application/json":  {Schema: lines},
			"text/event-stream": {Schema: edge.EventStreamSchema(api, map[string]any{"log": RunLogLine{}, "end": RunLogEnd{}})},
		},
	}}
	registerIf(h, api, o, h.runLogs)
}

func (h *handlers) runLogs(ctx context.Context, in *RunLogsInput) (*huma.StreamResponse, error) {
	run, err := h.ownedRun(ctx, in.Name)
	if err != nil {
		return nil, err
	}
	after := in.After
	follow := in.Follow || strings.Contains(in.Accept, "text/event-stream")
	if follow && in.LastEventID != "" {
		n, err := strconv.ParseInt(in.LastEventID, 10, 64)
		if err != nil || n < 0 {
			return nil, huma.Error400BadRequest("Last-Event-ID must be a line's seq (a non-negative integer)")
		}
		after = n
	}
	if !follow {
		lines, err := h.deps.Dispatcher.LogsAfter(ctx, run.Name, after, in.Limit)
		if err != nil {
			return nil, h.problem(err)
		}
		out := RunLogs{Name: run.Name, Lines: make([]RunLogLine, len(lines)), NextAfter: after, Done: run.Done()}
		for i, l := range lines {
			out.Lines[i] = logLine(l)
			out.NextAfter = l.Seq
		}
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			hctx.SetHeader("Content-Type", "application/json")
			hctx.SetStatus(http.StatusOK)
			_ = json.NewEncoder(hctx.BodyWriter()).Encode(out)
		}}, nil
	}
	// Phase changes wake the follower: the end of the run comes at once.
	events, err := h.deps.Dispatcher.Events(ctx, run.Name, 0)
	if err != nil {
		return nil, h.problem(err)
	}
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		ctx, cancel := edge.BoundStream(hctx.Context())
		defer cancel()
		w, flush := edge.OpenEventStream(hctx)
		fmt.Fprint(w, ": stream of run logs\nretry: 2000\n\n")
		flush()
		h.followLogs(ctx, w, flush, run.Name, after, events)
	}}, nil
}

// followLogs writes the run's lines after `after` as they are stored, and
// an end event once the run has ended and its last line was written.
func (h *handlers) followLogs(ctx context.Context, w io.Writer, flush func(), name string, after int64, events <-chan tasks.Event) {
	d := h.deps.Dispatcher
	keepAlive := time.NewTicker(edge.KeepAlive)
	defer keepAlive.Stop()
	wait := logsPollMin
	for {
		// The run is read before its lines: the dispatcher stores an
		// attempt's lines before its outcome, so lines read after a
		// terminal phase are the last ones.
		run, err := d.Get(ctx, name)
		if err != nil {
			return // gone (deleted), or the client left
		}
		lines, err := d.LogsAfter(ctx, name, after, 0)
		if err != nil {
			return
		}
		for _, l := range lines {
			b, _ := json.Marshal(logLine(l))
			fmt.Fprintf(w, "id: %d\nevent: log\ndata: %s\n\n", l.Seq, b)
			after = l.Seq
		}
		if len(lines) > 0 {
			flush()
			wait = logsPollMin
			continue // there may be more than one page
		}
		if run.Done() {
			end, _ := json.Marshal(RunLogEnd{Phase: run.Phase})
			fmt.Fprintf(w, "event: end\ndata: %s\n\n", end)
			flush()
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case _, ok := <-events:
			if !ok {
				events = nil
			}
		case <-keepAlive.C:
			fmt.Fprint(w, ": keep-alive\n\n")
			flush()
		case <-t.C:
			wait = min(2*wait, logsPollMax)
		}
		t.Stop()
	}
}

func logLine(l dispatch.LogLine) RunLogLine {
	return RunLogLine{Seq: l.Seq, Time: l.At, Level: l.Level, Attempt: l.Attempt, Stream: l.Stream, Message: l.Message, Attrs: l.Attrs}
}

// progressStream writes a run's progress into its event stream (GET
// /run/{name}/events) each time it changed: the node agent stores it at
// most once a second, so reading it as often costs no more.
type progressStream struct {
	h    *handlers
	name string
	last time.Time
}

// write sends a progress event when the run's progress changed since the
// last one sent, and reports whether it did.
func (p *progressStream) write(ctx context.Context, w io.Writer) bool {
	run, err := p.h.deps.Dispatcher.Get(ctx, p.name)
	if err != nil || run.Progress == nil || run.Progress.UpdatedAt.Equal(p.last) {
		return false
	}
	p.last = run.Progress.UpdatedAt
	b, _ := json.Marshal(run.Progress)
	fmt.Fprintf(w, "event: progress\ndata: %s\n\n", b)
	return true
}
