package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/taskgate/taskgate/environments/internal/edge"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/store"
)

// RunPath names a run in a path.
type RunPath struct {
	Name string `path:"name" maxLength:"64" example:"r7q2m4x9k3p8s1t6v5w0" doc:"The run's name."`
}

// RunStatus is GET /run/{name}.
type RunStatus struct {
	Name          string          `json:"name" example:"r7q2m4x9k3p8s1t6v5w0"`
	Task          string          `json:"task" example:"demo/development/echo"`
	Phase         tasks.Phase     `json:"phase" example:"running"`
	URL           string          `json:"url" example:"/run/r7q2m4x9k3p8s1t6v5w0"`
	Done          bool            `json:"done"`
	QueuePosition int             `json:"queue_position" doc:"1 for the next run to be placed; 0 once placed."`
	Reason        string          `json:"reason,omitempty" example:"waiting for 4 free A100-80GB on one node" doc:"Why a waiting run waits."`
	Attempt       int             `json:"attempt" doc:"Number of the current or last attempt."`
	Attempts      []tasks.Attempt `json:"attempts"`
	Node          string          `json:"node,omitempty"`
	Devices       []string        `json:"devices,omitempty"`
	Error         string          `json:"error,omitempty"`
	// Progress is the latest tasks.Progress report of the run's task.
	Progress *tasks.RunProgress `json:"progress,omitempty"`
	// Deliveries are the run's webhook callbacks; GET /run/{name} only.
	Deliveries []Delivery `json:"deliveries,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// GetRunOutput is GET /run/{name}.
type GetRunOutput struct{ Body RunStatus }

// ownedRun loads a run the caller may see: its owner's or, for the admin
// group, anyone's. Anything else is 404, so names of others' runs leak nothing.
func (h *handlers) ownedRun(ctx context.Context, name string) (*tasks.Run, error) {
	run, err := h.deps.Dispatcher.Get(ctx, name)
	if err != nil {
		return nil, h.problem(err)
	}
	id := caller(ctx)
	if run.Owner != id.Subject && !h.isAdmin(id) {
		return nil, huma.Error404NotFound("run not found")
	}
	return run, nil
}

func (h *handlers) status(run *tasks.Run) RunStatus {
	s := RunStatus{
		Name: run.Name, Task: run.Project + "/" + run.Domain + "/" + run.Task,
		Phase: run.Phase, URL: h.w.runURL(run.Name), Done: run.Done(),
		Attempt: run.Attempt, Attempts: run.Attempts, Node: run.Node, Devices: run.Devices,
		Error: run.Error, Progress: run.Progress, CreatedAt: run.CreatedAt, StartedAt: run.StartedAt, FinishedAt: run.FinishedAt,
	}
	if s.Attempts == nil {
		s.Attempts = []tasks.Attempt{}
	}
	if !run.Done() {
		s.QueuePosition, s.Reason = h.deps.Dispatcher.QueuePosition(run.Name)
	}
	return s
}

// Delivery is one webhook callback of a run and its attempts.
type Delivery struct {
	ID    string `json:"id" doc:"The webhook-id header, the same on every attempt."`
	Event string `json:"event" example:"completed"`
	// URL is shown without its query, which may carry a token.
	URL      string                  `json:"url"`
	State    string                  `json:"state" example:"delivered"`
	Attempts []store.DeliveryAttempt `json:"attempts"`
}

func (h *handlers) getRun(ctx context.Context, in *RunPath) (*GetRunOutput, error) {
	run, err := h.ownedRun(ctx, in.Name)
	if err != nil {
		return nil, err
	}
	out := &GetRunOutput{Body: h.status(run)}
	if run.Webhook != "" {
		ds, err := h.deps.Dispatcher.Deliveries(ctx, run.Name)
		if err != nil {
			return nil, h.problem(err)
		}
		for _, d := range ds {
			attempts := d.Attempts
			if attempts == nil {
				attempts = []store.DeliveryAttempt{}
			}
			out.Body.Deliveries = append(out.Body.Deliveries, Delivery{
				ID: d.ID, Event: d.Event, URL: withoutQuery(d.URL), State: d.State, Attempts: attempts,
			})
		}
	}
	return out, nil
}

func withoutQuery(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return u.String()
}

// RunIO is GET /run/{name}/io.
type RunIO struct {
	Name    string          `json:"name"`
	Inputs  json.RawMessage `json:"inputs"`
	Outputs json.RawMessage `json:"outputs" doc:"null until the run succeeded."`
}

// GetRunIOOutput is GET /run/{name}/io.
type GetRunIOOutput struct{ Body RunIO }

func (h *handlers) getRunIO(ctx context.Context, in *RunPath) (*GetRunIOOutput, error) {
	run, err := h.ownedRun(ctx, in.Name)
	if err != nil {
		return nil, err
	}
	io := RunIO{Name: run.Name, Inputs: run.Inputs, Outputs: run.Outputs}
	if len(io.Inputs) == 0 {
		io.Inputs = json.RawMessage("null")
	}
	if len(io.Outputs) == 0 || run.Phase != tasks.PhaseSucceeded {
		io.Outputs = json.RawMessage("null")
	}
	return &GetRunIOOutput{Body: io}, nil
}

// AbortInput is POST /run/{name}/abort.
type AbortInput struct {
	RunPath
	Reason string `query:"reason" maxLength:"512" doc:"Why the run is aborted; kept with the run."`
}

// AbortOutput is POST /run/{name}/abort.
type AbortOutput struct {
	Body struct {
		Name   string `json:"name"`
		Status string `json:"status" example:"abort_requested"`
		Reason string `json:"reason"`
	}
}

func (h *handlers) abortRun(ctx context.Context, in *AbortInput) (*AbortOutput, error) {
	if err := edge.CheckText("query.reason", in.Reason); err != nil {
		return nil, err
	}
	if _, err := h.ownedRun(ctx, in.Name); err != nil {
		return nil, err
	}
	if _, err := h.deps.Dispatcher.Abort(ctx, in.Name, in.Reason); err != nil {
		return nil, h.problem(err)
	}
	out := &AbortOutput{}
	out.Body.Name, out.Body.Status, out.Body.Reason = in.Name, "abort_requested", in.Reason
	return out, nil
}

// ListRunsInput is GET /runs.
type ListRunsInput struct {
	Phase         []string  `query:"phase" enum:"queued,waiting_for_resources,initializing,running,succeeded,failed,aborted,timed_out" doc:"Only runs in these phases."`
	Task          string    `query:"task" pattern:"^[a-z0-9-]+/[a-z0-9-]+/[a-z0-9-]+$" example:"demo/development/echo" doc:"Only runs of this task (project/domain/name)."`
	CreatedAfter  time.Time `query:"created_after" doc:"Only runs created at or after this time (RFC 3339)."`
	CreatedBefore time.Time `query:"created_before" doc:"Only runs created before this time (RFC 3339)."`
	Cursor        string    `query:"cursor" maxLength:"256" doc:"next_cursor of the previous page."`
	Limit         int       `query:"limit" minimum:"1" maximum:"200" default:"50"`
	All           bool      `query:"all" doc:"Admin group only: every caller's runs."`
}

// Resolve refuses a window that ends before it starts, and times the
// store cannot hold (nanoseconds since 1970 in 64 bits: before 1970 or
// from 2262 on), which huma's RFC 3339 parsing lets through. Huma calls
// it after the fields are parsed.
func (in *ListRunsInput) Resolve(huma.Context) []error {
	var errs []error
	for _, f := range []struct {
		at    time.Time
		where string
	}{{in.CreatedAfter, "query.created_after"}, {in.CreatedBefore, "query.created_before"}} {
		if !f.at.IsZero() && (f.at.Year() < 1970 || f.at.Year() >= 2262) {
			errs = append(errs, &huma.ErrorDetail{Location: f.where, Value: f.at, Message: "must be from 1970 to 2261"})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	if !in.CreatedAfter.IsZero() && !in.CreatedBefore.IsZero() && !in.CreatedAfter.Before(in.CreatedBefore) {
		return []error{&huma.ErrorDetail{
			Location: "query.created_before", Value: in.CreatedBefore,
			Message: "must be after created_after",
		}}
	}
	return nil
}

// ListRunsOutput is GET /runs.
type ListRunsOutput struct {
	Body struct {
		Runs       []RunStatus `json:"runs"`
		NextCursor string      `json:"next_cursor,omitempty"`
	}
}

func (h *handlers) listRuns(ctx context.Context, in *ListRunsInput) (*ListRunsOutput, error) {
	id := caller(ctx)
	opts := dispatch.ListOptions{
		Owner: id.Subject, Task: in.Task, CreatedAfter: in.CreatedAfter, CreatedBefore: in.CreatedBefore,
		Cursor: in.Cursor, Limit: in.Limit,
	}
	if in.All {
		if !h.isAdmin(id) {
			return nil, huma.Error403Forbidden("all=true is for the admin group")
		}
		opts.Owner = ""
	}
	for _, p := range in.Phase {
		opts.Phases = append(opts.Phases, tasks.Phase(p))
	}
	runs, next, err := h.deps.Dispatcher.List(ctx, opts)
	if err != nil {
		return nil, h.problem(err)
	}
	out := &ListRunsOutput{}
	out.Body.Runs = make([]RunStatus, len(runs))
	for i, r := range runs {
		out.Body.Runs[i] = h.status(r)
	}
	out.Body.NextCursor = next
	return out, nil
}

// RunEventsInput is GET /run/{name}/events.
type RunEventsInput struct {
	RunPath
	LastEventID string `header:"Last-Event-ID" doc:"Resume after this event id."`
}

func (h *handlers) runEvents(ctx context.Context, in *RunEventsInput) (*huma.StreamResponse, error) {
	if _, err := h.ownedRun(ctx, in.Name); err != nil {
		return nil, err
	}
	var after int64
	if in.LastEventID != "" {
		n, err := strconv.ParseInt(in.LastEventID, 10, 64)
		if err != nil || n < 0 {
			return nil, huma.Error400BadRequest("Last-Event-ID must be an event id (a non-negative integer)")
		}
		after = n
	}
	events, err := h.deps.Dispatcher.Events(ctx, in.Name, after)
	if err != nil {
		return nil, h.problem(err)
	}
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		ctx, cancel := edge.BoundStream(hctx.Context())
		defer cancel()
		w, flush := edge.OpenEventStream(hctx)
		fmt.Fprint(w, ": stream of run events\nretry: 2000\n\n")
		flush()
		tick := time.NewTicker(edge.KeepAlive)
		defer tick.Stop()
		progress := &progressStream{h: h, name: in.Name}
		progressTick := time.NewTicker(progressPoll)
		defer progressTick.Stop()
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					return
				}
				if ev.Phase.Terminal() {
					progress.write(ctx, w) // the last, stored before the outcome
				}
				b, _ := json.Marshal(ev)
				fmt.Fprintf(w, "id: %d\nevent: phase\ndata: %s\n\n", ev.Seq, b)
				flush()
				if ev.Phase.Terminal() {
					return
				}
			case <-tick.C:
				fmt.Fprint(w, ": keep-alive\n\n")
				flush()
			case <-progressTick.C:
				if progress.write(ctx, w) {
					flush()
				}
			case <-ctx.Done():
				return
			}
		}
	}}, nil
}

// NodesOutput is GET /nodes.
type NodesOutput struct {
	Body struct {
		Nodes []dispatch.NodeStatus `json:"nodes"`
	}
}

func (h *handlers) requireAdmin(ctx context.Context) error {
	if !h.isAdmin(caller(ctx)) {
		return huma.Error403Forbidden("this endpoint is for the admin group")
	}
	return nil
}

func (h *handlers) listNodes(ctx context.Context, _ *struct{}) (*NodesOutput, error) {
	if err := h.requireAdmin(ctx); err != nil {
		return nil, err
	}
	nodes, err := h.deps.Dispatcher.Nodes(ctx)
	if err != nil {
		return nil, h.problem(err)
	}
	out := &NodesOutput{}
	out.Body.Nodes = nodes
	if out.Body.Nodes == nil {
		out.Body.Nodes = []dispatch.NodeStatus{}
	}
	return out, nil
}

// QueueOutput is GET /queue.
type QueueOutput struct{ Body dispatch.QueueSummary }

func (h *handlers) queueSummary(ctx context.Context, _ *struct{}) (*QueueOutput, error) {
	if err := h.requireAdmin(ctx); err != nil {
		return nil, err
	}
	q, err := h.deps.Dispatcher.Queue(ctx)
	if err != nil {
		return nil, h.problem(err)
	}
	return &QueueOutput{Body: q}, nil
}
