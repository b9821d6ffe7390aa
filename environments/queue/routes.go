package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/internal/edge"
	"github.com/taskgate/taskgate/internal/storable"
	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
)

// Tag tags the queue operations in an app environment's docs.
const Tag = "queue"

// submitRoute is the chi pattern of POST /queue/submit/{path...}: chi's
// wildcard, the only pattern that spans slashes. The OpenAPI document shows
// it as /queue/submit/{path}.
const (
	submitRoute   = "/queue/submit/*"
	submitDocPath = "/queue/submit/{path}"
)

// The codes name why a completed request has no response, or why an
// operation was refused, in the "code" member of the problem+json.
const (
	CodeAlreadyCompleted = "ALREADY_COMPLETED"
	CodeInQueue          = StatusInQueue
	CodeInProgress       = StatusInProgress
	CodeCancelled        = "CANCELLED"
	CodeStartTimeout     = "START_TIMEOUT"
	CodeTimedOut         = "TIMED_OUT"
	CodeFailed           = "FAILED"
)

// Problem is a problem+json (RFC 9457) with the queue's
// machine-readable Code, such as ALREADY_COMPLETED.
type Problem struct {
	huma.ErrorModel
	Code string `json:"code,omitempty" example:"ALREADY_COMPLETED" doc:"Machine-readable reason: ALREADY_COMPLETED, IN_QUEUE, IN_PROGRESS, CANCELLED, START_TIMEOUT, TIMED_OUT or FAILED."`
}

// RecordedOutcome marks a Problem as the recorded outcome of a
// queued request, which error bodies pass as it is (edge.Recorded).
func (*Problem) RecordedOutcome() {}

func newProblem(status int, code, detail string) *Problem {
	return &Problem{ErrorModel: huma.ErrorModel{Title: http.StatusText(status), Status: status, Detail: detail}, Code: code}
}

// SubmitInput is POST /queue/submit/{path...}.
// The queued path (escaped as sent) and the body, which may be empty and of
// any type, are read by Resolve: huma's RawBody would require a body.
type SubmitInput struct {
	Priority      string   `header:"X-Queue-Priority" enum:"normal,low" default:"normal" doc:"low runs after every normal request waiting with it."`
	StartTimeout  float64  `header:"X-Queue-Start-Timeout" minimum:"0" example:"30" doc:"Seconds the request may wait to start; past them it completes with error START_TIMEOUT. 0 or absent: no limit."`
	Webhook       string   `query:"webhook" maxLength:"2048" doc:"URL that gets a signed callback (Standard Webhooks) when the request completes."`
	WebhookEvents []string `query:"webhook_events_filter" enum:"start,completed" doc:"Events that trigger the callback; default completed."`

	stored Request
}

// Resolve captures what the replay needs from the request itself. The
// environment's body limit (Limits.MaxBodyBytes) bounds the read, and
// answers 413 beyond it.
func (in *SubmitInput) Resolve(ctx huma.Context) []error {
	u := ctx.URL()
	var errs []error
	in.stored, errs = capture(ctx, strings.TrimPrefix(u.EscapedPath(), "/queue/submit"), "webhook", "webhook_events_filter")
	return errs
}

// capture is the request to queue: the body, the query without the
// queue's own params, the host, the client IP and the headers a replay may
// see; path is the escaped path to queue.
func capture(ctx huma.Context, path string, params ...string) (Request, []error) {
	body, err := io.ReadAll(ctx.BodyReader())
	if err != nil {
		return Request{}, []error{huma.Error400BadRequest("reading the request body: " + err.Error())}
	}
	stored := Request{
		Method:   http.MethodPost,
		Host:     ctx.Host(),
		Path:     path,
		RawQuery: withoutParams(ctx.URL().RawQuery, params...),
		ClientIP: chimw.GetClientIP(ctx.Context()),
	}
	setBody(body, &stored.Body, &stored.BodyBase64)
	// The stored request is JSON, whose encoder would quietly change bytes
	// that are not UTF-8 (Go's server takes them in a query and in header
	// values): the replay would not be the request submitted.
	var errs []error
	if !storable.Text(stored.RawQuery) {
		errs = append(errs, edge.TextDetail("query"))
	}
	if !storable.Text(stored.Host) {
		errs = append(errs, edge.TextDetail("header.Host"))
	}
	var credHeader string
	if c, ok := middleware.CredentialsFromContext(ctx.Context()); ok && c.Source == middleware.SourceHeader {
		credHeader = c.Name
	}
	ctx.EachHeader(func(name, value string) {
		if queueHeaderAllowed(name, credHeader) {
			if stored.Header == nil {
				stored.Header = map[string][]string{}
			}
			k := http.CanonicalHeaderKey(name)
			stored.Header[k] = append(stored.Header[k], value)
			if !storable.Text(value) {
				errs = append(errs, edge.TextDetail("header."+k))
			}
		}
	})
	return stored, errs
}

// Submitted is the body of POST /queue/submit: where to follow the
// request. The URLs are paths on the environment's host.
type Submitted struct {
	RequestID   string `json:"request_id" example:"r7q2m4x9k3p8s1t6v5w0"`
	Status      string `json:"status" example:"IN_QUEUE"`
	StatusURL   string `json:"status_url" example:"/queue/requests/r7q2m4x9k3p8s1t6v5w0/status"`
	ResponseURL string `json:"response_url" example:"/queue/requests/r7q2m4x9k3p8s1t6v5w0"`
	CancelURL   string `json:"cancel_url" example:"/queue/requests/r7q2m4x9k3p8s1t6v5w0/cancel"`
}

// SubmitOutput is the response of POST /queue/submit.
type SubmitOutput struct {
	Location string `header:"Location"`
	Body     Submitted
}

// RequestPath names a queued request.
type RequestPath struct {
	ID string `path:"id" maxLength:"64" example:"r7q2m4x9k3p8s1t6v5w0" doc:"The request_id of the submit."`
}

// StatusInput is GET /queue/requests/{id}/status (and /status/stream).
type StatusInput struct {
	RequestPath
	Logs bool `query:"logs" doc:"Include the lines the replay logged (1 or true)."`
}

// Log is one line logged while the request was replayed, by the
// queue or by the handler through tasks.Logger(r.Context()).
type Log struct {
	Timestamp time.Time       `json:"timestamp"`
	Level     string          `json:"level" example:"INFO"`
	Message   string          `json:"message"`
	Attrs     json.RawMessage `json:"attrs,omitempty"`
}

// Status is the status of a queued request.
type Status struct {
	RequestID string `json:"request_id"`
	Status    string `json:"status" enum:"IN_QUEUE,IN_PROGRESS,COMPLETED"`
	// QueuePosition counts the requests and runs ahead (fal's meaning):
	// 0 for the next to start, and once started.
	QueuePosition int    `json:"queue_position" doc:"Runs ahead of this request in the queue; 0 when next or started."`
	ResponseURL   string `json:"response_url"`
	// Error and ErrorType say why a COMPLETED request has no response.
	Error     string `json:"error,omitempty"`
	ErrorType string `json:"error_type,omitempty" enum:"CANCELLED,START_TIMEOUT,TIMED_OUT,FAILED"`
	Logs      []Log  `json:"logs,omitempty"`
}

// StatusOutput is GET /queue/requests/{id}/status: 202 until the
// request completed, then 200.
type StatusOutput struct {
	Status int
	Body   Status
}

// CancelOutput is PUT /queue/requests/{id}/cancel.
type CancelOutput struct{ Body Cancelled }

// Cancelled is the body of PUT /queue/requests/{id}/cancel.
type Cancelled struct {
	Status string `json:"status" example:"CANCELLATION_REQUESTED"`
}

func (q *Queue) register(api huma.API) {
	maxBody := q.settings.Limits.MaxBodyBytes
	if maxBody == 0 {
		maxBody = environments.DefaultMaxBodyBytes
	}
	tags := []string{Tag}
	huma.Register(api, huma.Operation{
		OperationID: "queue-submit", Method: http.MethodPost, Path: submitRoute, Tags: tags,
		Summary: "Queue a request",
		Description: "Stores the request (POST to the path after /queue/submit, with its query, body, content " +
			"headers and custom X- headers; never credentials) durably, and answers 202 with the URLs to follow it. " +
			"It is replayed as the caller, through the scheduler, under the environment's resources and in-flight limit. " +
			"Credentials a handler forwards are kept in memory only: a request replayed after a restart has none.",
		DefaultStatus: http.StatusAccepted,
	}, q.submit)
	// The document shows chi's wildcard as the parameter it stands for,
	// and the body that Resolve reads (declared at registration, huma
	// would parse it itself).
	if paths := api.OpenAPI().Paths; paths[submitRoute] != nil && paths[submitRoute].Post != nil {
		item := paths[submitRoute]
		item.Post.RequestBody = &huma.RequestBody{
			Description: fmt.Sprintf("The body of the request to queue, of any type, at most %d bytes; it may be empty.", maxBody),
			Content: map[string]*huma.MediaType{
				"application/json":         {Schema: &huma.Schema{}},
				"application/octet-stream": {Schema: &huma.Schema{Type: huma.TypeString, Format: "binary"}},
			},
		}
		item.Post.Parameters = append([]*huma.Param{{
			Name: "path", In: "path", Required: true, Schema: &huma.Schema{Type: huma.TypeString},
			Example:     "generate",
			Description: "The route of the app to queue (it may span slashes), without its leading slash; the query string is kept.",
		}}, item.Post.Parameters...)
		paths[submitDocPath] = item
		delete(paths, submitRoute)
	}
	huma.Register(api, huma.Operation{
		OperationID: "queue-status", Method: http.MethodGet, Path: "/queue/requests/{id}/status", Tags: tags,
		Summary:     "Get a queued request's status",
		Description: "IN_QUEUE (with queue_position), IN_PROGRESS or COMPLETED. 202 until completed, then 200. `logs=1` adds the replay's log lines.",
		Responses: map[string]*huma.Response{"202": {
			Description: "Not completed yet.",
			Content:     map[string]*huma.MediaType{"application/json": {Schema: api.OpenAPI().Components.Schemas.Schema(reflectStatus, true, "QueueStatus")}},
		}},
	}, q.status)
	huma.Register(api, huma.Operation{
		OperationID: "queue-status-stream", Method: http.MethodGet, Path: "/queue/requests/{id}/status/stream", Tags: tags,
		Summary:     "Stream a queued request's status",
		Description: "Server-Sent Events: the status now, then each change (and queue position change), ending after COMPLETED.",
		Responses: map[string]*huma.Response{"200": {
			Description: "An event stream of Status objects.",
			Content:     map[string]*huma.MediaType{"text/event-stream": {Schema: &huma.Schema{Type: huma.TypeString}}},
		}},
	}, q.statusStream)
	huma.Register(api, huma.Operation{
		OperationID: "queue-response", Method: http.MethodGet, Path: "/queue/requests/{id}", Tags: tags,
		Summary: "Get a queued request's response",
		Description: "The recorded response (status code, headers and body) once the request completed. Before, 400 with " +
			"code IN_QUEUE or IN_PROGRESS. A request that completed without a response is a problem whose code says why: " +
			"CANCELLED (409), START_TIMEOUT or TIMED_OUT (504), FAILED (500).",
		Responses: map[string]*huma.Response{"200": {Description: "The recorded response, as the handler wrote it."}},
	}, q.response)
	huma.Register(api, huma.Operation{
		OperationID: "queue-cancel", Method: http.MethodPut, Path: "/queue/requests/{id}/cancel", Tags: tags,
		Summary: "Cancel a queued request",
		Description: "A request in the queue is removed; one in progress has its context cancelled. Both answer 202 " +
			"CANCELLATION_REQUESTED. A completed request is 400 with code ALREADY_COMPLETED.",
		DefaultStatus: http.StatusAccepted,
	}, q.cancel)
}

var reflectStatus = reflect.TypeFor[Status]()

// withoutParams drops the queue's own parameters from a query string and
// keeps the rest exactly: same order, same escaping.
func withoutParams(raw string, names ...string) string {
	if raw == "" {
		return ""
	}
	kept := make([]string, 0, strings.Count(raw, "&")+1)
	for part := range strings.SplitSeq(raw, "&") {
		k, _, _ := strings.Cut(part, "=")
		if uk, err := url.QueryUnescape(k); err == nil && slices.Contains(names, uk) {
			continue
		}
		kept = append(kept, part)
	}
	return strings.Join(kept, "&")
}

// urls of a request, as paths on the environment's host.
func (q *Queue) urls(id string) (status, response, cancel string) {
	base := path.Join("/", q.settings.PathPrefix, "queue", "requests", id)
	return base + "/status", base, base + "/cancel"
}

// verifiedCaller is the request's verified identity; the queue has no
// anonymous callers, so that requests always have an owner.
func verifiedCaller(ctx context.Context) (middleware.Identity, error) {
	id, ok := middleware.IdentityFromContext(ctx)
	if !ok || id.Subject == "" {
		return id, huma.ErrorWithHeaders(huma.Error401Unauthorized("the queue needs a verified caller"),
			http.Header{"WWW-Authenticate": {`Bearer realm="taskgate"`}})
	}
	return id, nil
}

func (q *Queue) submit(ctx context.Context, in *SubmitInput) (*SubmitOutput, error) {
	id, err := verifiedCaller(ctx)
	if err != nil {
		return nil, err
	}
	deps, _ := q.current()
	if isQueueRoute(in.stored.Path) {
		return nil, huma.Error400BadRequest("the queue's own routes cannot be queued")
	}
	events, err := edge.WebhookParams(in.Webhook, in.WebhookEvents)
	if err != nil {
		return nil, err
	}
	startTimeout := secondsDuration(in.StartTimeout)
	if startTimeout > q.cfg.MaxStartTimeout {
		return nil, huma.Error422UnprocessableEntity("X-Queue-Start-Timeout too long", &huma.ErrorDetail{
			Message:  fmt.Sprintf("at most %s seconds", formatSeconds(q.cfg.MaxStartTimeout)),
			Location: "header.X-Queue-Start-Timeout", Value: in.StartTimeout,
		})
	}
	stored := in.stored
	stored.StartTimeout = in.StartTimeout
	if creds, ok := middleware.CredentialsFromContext(ctx); ok {
		stored.CredentialsRef = q.holdCredentials(id.Subject, creds)
	}
	inputs, err := json.Marshal(stored)
	if err != nil {
		q.dropCredentials(stored.CredentialsRef)
		return nil, q.problem(err)
	}
	priority := PriorityNormal
	if in.Priority == "low" {
		priority = PriorityLow
	}
	run, _, err := deps.Dispatcher.Submit(ctx, dispatch.SubmitRequest{
		Task: q.def, Inputs: inputs, Caller: id, Priority: priority,
		Webhook: in.Webhook, WebhookEvents: events,
	})
	if err != nil {
		q.dropCredentials(stored.CredentialsRef)
		return nil, q.problem(err)
	}
	q.track(deps.Dispatcher, run.Name, stored.CredentialsRef, startTimeout)
	status, response, cancel := q.urls(run.Name)
	return &SubmitOutput{Location: status, Body: Submitted{
		RequestID: run.Name, Status: StatusInQueue, StatusURL: status, ResponseURL: response, CancelURL: cancel,
	}}, nil
}

// ownedRequest loads a request of this queue that the caller may see: its
// own or, for the admin group, anyone's. Anything else is 404.
func (q *Queue) ownedRequest(ctx context.Context, id string) (*tasks.Run, *environments.Deps, error) {
	who, err := verifiedCaller(ctx)
	if err != nil {
		return nil, nil, err
	}
	deps, _ := q.current()
	run, err := deps.Dispatcher.Get(ctx, id)
	if err != nil {
		return nil, nil, q.problem(err)
	}
	if !q.owns(run) || (run.Owner != who.Subject && !who.InGroup(deps.AdminGroup)) {
		return nil, nil, huma.Error404NotFound("request not found")
	}
	return run, deps, nil
}

// problem answers err through the one table (edge.Problem), in the
// queue's words.
func (q *Queue) problem(err error) error {
	return edge.Problem(fmt.Errorf("queue of environment %s: %w", q.env, err), edge.Routes{
		Noun:        "request",
		AlreadyDone: newProblem(http.StatusBadRequest, CodeAlreadyCompleted, "the request already completed"),
	})
}

// enforceStart aborts a request still waiting past its start deadline,
// for when the timer of the process that took the submit is gone.
func (q *Queue) enforceStart(ctx context.Context, deps *environments.Deps, run *tasks.Run) *tasks.Run {
	if !waiting(run.Phase) {
		return run
	}
	var in Request
	if json.Unmarshal(run.Inputs, &in) != nil {
		return run
	}
	dl := startDeadline(run, &in)
	if dl.IsZero() || time.Now().Before(dl) {
		return run
	}
	q.expire(ctx, deps.Dispatcher, run.Name, secondsDuration(in.StartTimeout))
	if fresh, err := deps.Dispatcher.Get(ctx, run.Name); err == nil {
		return fresh
	}
	return run
}

// queueStatusOf is fal's name for a run's phase.
func queueStatusOf(p tasks.Phase) string {
	switch {
	case p.Terminal():
		return StatusCompleted
	case waiting(p):
		return StatusInQueue
	}
	return StatusInProgress
}

// queueErrorType says why a completed request has no response; "" when
// it has one.
func queueErrorType(run *tasks.Run) string {
	switch {
	case run.Phase == tasks.PhaseSucceeded:
		return ""
	case strings.HasPrefix(run.AbortReason, ErrStartTimeout.Error()),
		strings.HasPrefix(run.Error, ErrStartTimeout.Error()),
		strings.HasPrefix(run.Error, "aborted: "+ErrStartTimeout.Error()):
		return CodeStartTimeout
	case run.Phase == tasks.PhaseAborted:
		return CodeCancelled
	case run.Phase == tasks.PhaseTimedOut:
		return CodeTimedOut
	}
	return CodeFailed
}

func (q *Queue) statusOf(ctx context.Context, deps *environments.Deps, run *tasks.Run, logs bool) (Status, error) {
	_, response, _ := q.urls(run.Name)
	s := Status{RequestID: run.Name, Status: queueStatusOf(run.Phase), ResponseURL: response}
	if s.Status == StatusInQueue {
		if pos, _ := deps.Dispatcher.QueuePosition(run.Name); pos > 0 {
			s.QueuePosition = pos - 1
		}
	}
	if run.Done() {
		s.ErrorType = queueErrorType(run)
		if s.ErrorType != "" {
			s.Error = run.Error
		}
	}
	if logs {
		lines, err := deps.Dispatcher.Logs(ctx, run.Name)
		if err != nil {
			return s, q.problem(err)
		}
		s.Logs = make([]Log, len(lines))
		for i, l := range lines {
			s.Logs[i] = Log{Timestamp: l.At, Level: l.Level, Message: l.Message, Attrs: l.Attrs}
		}
	}
	return s, nil
}

func (q *Queue) status(ctx context.Context, in *StatusInput) (*StatusOutput, error) {
	run, deps, err := q.ownedRequest(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	run = q.enforceStart(ctx, deps, run)
	s, err := q.statusOf(ctx, deps, run, in.Logs)
	if err != nil {
		return nil, err
	}
	out := &StatusOutput{Status: http.StatusAccepted, Body: s}
	if run.Done() {
		out.Status = http.StatusOK
	}
	return out, nil
}

// queuePositionPoll is how often a stream re-reads the queue position of a
// waiting request: positions move without events of the request itself.
var queuePositionPoll = time.Second

func (q *Queue) statusStream(ctx context.Context, in *StatusInput) (*huma.StreamResponse, error) {
	run, deps, err := q.ownedRequest(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	events, err := deps.Dispatcher.Events(ctx, run.Name, 0)
	if err != nil {
		return nil, q.problem(err)
	}
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		sctx, cancel := edge.BoundStream(hctx.Context())
		defer cancel()
		w, flush := edge.OpenEventStream(hctx)
		var last Status
		seq := 0
		// send writes the current status when it differs from the last one
		// sent, and reports whether the stream is over.
		send := func() bool {
			cur, err := deps.Dispatcher.Get(sctx, run.Name)
			if err != nil {
				return true
			}
			cur = q.enforceStart(sctx, deps, cur)
			s, err := q.statusOf(sctx, deps, cur, in.Logs)
			if err != nil {
				return true
			}
			if seq == 0 || s.Status != last.Status || s.QueuePosition != last.QueuePosition || len(s.Logs) != len(last.Logs) {
				seq++
				b, _ := json.Marshal(s)
				fmt.Fprintf(w, "id: %d\ndata: %s\n\n", seq, b)
				flush()
				last = s
			}
			return s.Status == StatusCompleted
		}
		fmt.Fprint(w, ": queue status stream\nretry: 2000\n\n")
		if send() {
			return
		}
		poll := time.NewTicker(queuePositionPoll)
		defer poll.Stop()
		alive := time.NewTicker(edge.KeepAlive)
		defer alive.Stop()
		for {
			select {
			case _, ok := <-events:
				if !ok {
					send()
					return
				}
			case <-poll.C:
			case <-alive.C:
				fmt.Fprint(w, ": keep-alive\n\n")
				flush()
				continue
			case <-sctx.Done():
				return
			}
			if send() {
				return
			}
		}
	}}, nil
}

func (q *Queue) response(ctx context.Context, in *RequestPath) (*huma.StreamResponse, error) {
	run, deps, err := q.ownedRequest(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	run = q.enforceStart(ctx, deps, run)
	if !run.Done() {
		st := queueStatusOf(run.Phase)
		return nil, newProblem(http.StatusBadRequest, st, "the request has not completed: "+st)
	}
	switch typ := queueErrorType(run); typ {
	case "":
	case CodeCancelled:
		return nil, newProblem(http.StatusConflict, typ, run.Error)
	case CodeStartTimeout, CodeTimedOut:
		return nil, newProblem(http.StatusGatewayTimeout, typ, run.Error)
	default:
		return nil, newProblem(http.StatusInternalServerError, typ, run.Error)
	}
	var out Response
	if err := json.Unmarshal(run.Outputs, &out); err != nil || out.StatusCode < 100 || out.StatusCode > 999 {
		if len(run.Outputs) == 0 {
			return nil, huma.Error410Gone("the response is no longer kept")
		}
		return nil, q.problem(fmt.Errorf("stored response of %s: %w", run.Name, err))
	}
	body := getBody(out.Body, out.BodyBase64)
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		for k, vs := range out.Header {
			for i, v := range vs {
				if i == 0 {
					hctx.SetHeader(k, v)
				} else {
					hctx.AppendHeader(k, v)
				}
			}
		}
		hctx.SetHeader(queueRequestIDHeader, run.Name)
		hctx.SetStatus(out.StatusCode)
		_, _ = hctx.BodyWriter().Write(body)
	}}, nil
}

func (q *Queue) cancel(ctx context.Context, in *RequestPath) (*CancelOutput, error) {
	run, deps, err := q.ownedRequest(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	if run.Done() {
		return nil, newProblem(http.StatusBadRequest, CodeAlreadyCompleted, "the request already completed")
	}
	if _, err := deps.Dispatcher.Abort(ctx, run.Name, "cancelled by the caller"); err != nil {
		return nil, q.problem(err)
	}
	out := &CancelOutput{}
	out.Body.Status = "CANCELLATION_REQUESTED"
	return out, nil
}
