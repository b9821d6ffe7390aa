package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/validation"
	"github.com/samber/lo"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/internal/edge"
	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/middleware/report"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
)

// handlers are the operations of one webhook environment.
type handlers struct {
	w    *Environment
	deps *environments.Deps
	api  huma.API

	schemaMu sync.Mutex
	schemas  map[string]taskSchemas
}

type taskSchemas struct{ in, out *huma.Schema }

var bearer = []map[string][]string{{"bearer": {}}}

func (h *handlers) register(api huma.API) {
	h.schemas = map[string]taskSchemas{}
	for _, d := range h.deps.Registry.All() {
		if h.w.Allowed(d) {
			h.schemasOf(d)
		}
	}
	// Each operation lists the errors its handler answers; huma adds 422
	// (parameters, bodies) and 500, and apidocs.Finish those of the auth
	// and limits in front.
	op := func(id, method, p, group, summary, desc string, errs ...int) huma.Operation {
		o := huma.Operation{
			OperationID: id, Method: method, Path: p, Tags: []string{group},
			Summary: summary, Description: desc, Security: bearer, Errors: errs,
		}
		if id == "health" {
			o.Security = nil
		}
		return o
	}
	// Answers of a store that cannot serve (edge.Problem).
	const unavailable, full = http.StatusServiceUnavailable, http.StatusInsufficientStorage
	registerIf(h, api, op("health", http.MethodGet, "/health", GroupCore, "Health check",
		"Answers while the server is up. Never needs credentials."), h.health)
	registerIf(h, api, op("me", http.MethodGet, "/me", GroupCore, "The caller's identity",
		"The verified identity behind the request's credentials."), h.me)
	registerIf(h, api, op("list-tasks", http.MethodGet, "/tasks", GroupTask, "List tasks",
		"The registered tasks this environment's allowlist lets through."), h.listTasks)
	registerIf(h, api, op("get-task", http.MethodGet, "/task/{project}/{domain}/{name}", GroupTask, "Describe a task",
		"Version, input and output JSON Schemas, resources, retry policy and timeout of a task.",
		http.StatusForbidden, http.StatusNotFound), h.getTask)
	if h.w.Serves("run-task") {
		runErrs := []int{http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusConflict, unavailable, full}
		o := op("run-task", http.MethodPost, "/run-task/{project}/{domain}/{name}", GroupTask, "Run a task",
			"Starts a run of the task with the JSON object of inputs in the body, validated against the task's input "+
				"schema (422 names each bad field; no run is created). Answers 202 with the run's name and URL. "+
				"`Prefer: wait=N` waits up to N seconds (at most 60) and answers 200 with the outputs when the run ends in time. "+
				"An `Idempotency-Key` makes retries return the same run; reusing it with another body, callback or "+
				"priority is 409. The body is JSON in UTF-8 (415 otherwise); text that is not valid UTF-8, or holds "+
				"NUL or lone surrogates, is 422. "+
				"`webhook` gets a signed callback when the run completes. "+
				"Each allowed task also has an operation of its own at its concrete path, with typed inputs and outputs.",
			runErrs...)
		accepted := h.api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[RunAccepted](), true, "RunAccepted")
		// The handler validates the body against the one task named in
		// the path; the document says only that it is an object.
		registerRun(h, api, o, &huma.Schema{Type: huma.TypeObject, AdditionalProperties: true}, accepted, h.runTask)
		// Only allowed tasks reach the document: one operation each. The
		// router sends a task's concrete path to run-task's route, whose
		// pattern it matches: the same handler, route label and limits,
		// so the operation is documented only.
		for _, d := range h.deps.Registry.All() {
			if !h.w.Allowed(d) {
				continue
			}
			s := h.schemasOf(d)
			hint := schemaHint(d)
			o := op("run"+hint, http.MethodPost, "/run-task/"+d.ID(), GroupTask, "Run "+d.ID(),
				lo.CoalesceOrEmpty(d.Description, "Runs task "+d.ID()+".")+
					" As run-task (POST /run-task/{project}/{domain}/{name}), with this task's inputs and outputs typed.",
				runErrs...)
			registerRun(h, documentedOnly{api}, o, s.in, h.acceptedSchema(hint, accepted, s.out), servedByRunTask)
		}
	}
	registerIf(h, api, op("get-run", http.MethodGet, "/run/{name}", GroupRun, "Get a run",
		"Phase, queue position, attempts, node and timings of a run. Someone else's run is 404.",
		http.StatusNotFound, unavailable), h.getRun)
	registerIf(h, api, op("get-run-io", http.MethodGet, "/run/{name}/io", GroupRun, "Get a run's inputs and outputs",
		"Outputs are null until the run has succeeded.", http.StatusNotFound, unavailable), h.getRunIO)
	abort := op("abort-run", http.MethodPost, "/run/{name}/abort", GroupRun, "Abort a run",
		"A queued run is aborted at once; a running run has its context cancelled. A finished run is 409.",
		http.StatusNotFound, http.StatusConflict, unavailable, full)
	abort.DefaultStatus = http.StatusAccepted
	registerIf(h, api, abort, h.abortRun)
	registerIf(h, api, op("list-runs", http.MethodGet, "/runs", GroupRun, "List the caller's runs",
		"Newest first, with cursor pagination and filters by phase and task.", http.StatusForbidden, unavailable), h.listRuns)
	events := op("run-events", http.MethodGet, "/run/{name}/events", GroupRun, "Stream a run's events",
		"Server-Sent Events: one `phase` event per phase change, ending after the terminal one, and a `progress` "+
			"event (no id) each time the task's reported progress changed, at most about one a second. "+
			"Each event's id is its sequence number; send `Last-Event-ID` to resume after it.",
		http.StatusBadRequest, http.StatusNotFound, unavailable)
	events.Responses = map[string]*huma.Response{"200": {
		Description: "An event stream.",
		Content: map[string]*huma.MediaType{"text/event-stream": {
			Schema: edge.EventStreamSchema(api, map[string]any{"phase": tasks.Event{}, "progress": tasks.RunProgress{}}),
		}},
	}}
	registerIf(h, api, events, h.runEvents)
	h.registerLogs(api)
	registerIf(h, api, op("list-nodes", http.MethodGet, "/nodes", GroupNodes, "List nodes",
		"Node inventories with their free devices. Admin group only.", http.StatusForbidden, unavailable), h.listNodes)
	registerIf(h, api, op("queue-summary", http.MethodGet, "/queue", GroupNodes, "Queue summary",
		"Non-terminal runs per phase and, from the process holding the scheduler lease, waiting runs by "+
			"project and reason and the nodes reserved for big runs. Admin group only.",
		http.StatusForbidden, unavailable), h.queueSummary)
}

// registerRun registers a run-task operation whose JSON body has schema
// in, answered 200 (Prefer: wait) or 202 with schema accepted.
func registerRun[I any](h *handlers, api huma.API, o huma.Operation, in, accepted *huma.Schema,
	fn func(context.Context, *I) (*RunTaskOutput, error)) {
	o.DefaultStatus = http.StatusAccepted
	o.RequestBody = &huma.RequestBody{
		Description: "The task's inputs: a JSON object matching the task's input schema (see GET /task/…).",
		Content: map[string]*huma.MediaType{"application/json": {
			Schema: in, Example: map[string]any{"message": "hi"},
		}},
	}
	if in.Ref != "" {
		o.RequestBody.Content["application/json"].Example = nil
	}
	// The handler validates the body against the task's schema itself,
	// where it can name each bad field.
	o.SkipValidateBody = true
	o.Responses = map[string]*huma.Response{
		"200": {
			Description: "The run ended within Prefer: wait; outputs included.",
			Content:     map[string]*huma.MediaType{"application/json": {Schema: accepted}},
		},
		"202": {
			Description: "The run was started (or found by its Idempotency-Key).",
			Content:     map[string]*huma.MediaType{"application/json": {Schema: accepted}},
		},
	}
	huma.Register(api, o, fn)
	// RawBody makes huma document an octet-stream body too; the body is
	// JSON only, validated against the task's schema by the handler.
	if pi := api.OpenAPI().Paths[o.Path]; pi != nil && pi.Post != nil {
		delete(pi.Post.RequestBody.Content, "application/octet-stream")
	}
}

// documentedOnly is an API whose operations go in its document and never
// reach its router.
type documentedOnly struct{ huma.API }

func (documentedOnly) Adapter() huma.Adapter { return unrouted{} }

type unrouted struct{}

func (unrouted) Handle(*huma.Operation, func(huma.Context))       {}
func (unrouted) ServeHTTP(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) }

// servedByRunTask stands for the handler of a task's own operation, which
// run-task's route serves (see register).
func servedByRunTask(context.Context, *RunOptions) (*RunTaskOutput, error) {
	return nil, huma.Error500InternalServerError("a task's operation is served by run-task")
}

// acceptedSchema is RunAccepted with the outputs of one task typed,
// registered as "<Hint>Run" so generated clients name it.
func (h *handlers) acceptedSchema(hint string, accepted, out *huma.Schema) *huma.Schema {
	reg := h.api.OpenAPI().Components.Schemas
	base := deref(reg, accepted)
	s := *base
	s.Properties = maps.Clone(base.Properties)
	// A bare $ref, which generators turn into the output type itself.
	s.Properties["outputs"] = out
	s.Title = ""
	name := hint + "Run"
	reg.Map()[name] = &s
	return &huma.Schema{Ref: "#/components/schemas/" + name}
}

// registerIf registers o when the environment serves the endpoint it names.
func registerIf[I, O any](h *handlers, api huma.API, o huma.Operation, fn func(context.Context, *I) (*O, error)) {
	if h.w.Serves(o.OperationID) {
		huma.Register(api, o, fn)
	}
}

// schemasOf registers the task's input and output types in the API's schema
// registry (so /docs lists them) and returns the resolved schemas.
func (h *handlers) schemasOf(d *tasks.Definition) taskSchemas {
	h.schemaMu.Lock()
	defer h.schemaMu.Unlock()
	if s, ok := h.schemas[d.ID()]; ok {
		return s
	}
	reg := h.api.OpenAPI().Components.Schemas
	hint := schemaHint(d)
	s := taskSchemas{
		in:  reg.Schema(d.InputType, true, hint+"Input"),
		out: reg.Schema(d.OutputType, true, hint+"Output"),
	}
	h.schemas[d.ID()] = s
	return s
}

// schemaHint is "DemoDevelopmentEcho" for demo/development/echo.
func schemaHint(d *tasks.Definition) string {
	var b strings.Builder
	for _, part := range []string{d.Project, d.Domain, d.Name} {
		for _, w := range strings.Split(part, "-") {
			if w != "" {
				b.WriteString(strings.ToUpper(w[:1]) + w[1:])
			}
		}
	}
	return b.String()
}

// caller is the verified identity, or an anonymous one where the
// environment serves without credentials.
func caller(ctx context.Context) middleware.Identity {
	if id, ok := middleware.IdentityFromContext(ctx); ok {
		return id
	}
	return middleware.Identity{Subject: "anonymous"}
}

func (h *handlers) isAdmin(id middleware.Identity) bool { return id.InGroup(h.deps.AdminGroup) }

// problem answers err through the one table (edge.Problem).
func (h *handlers) problem(err error) error { return edge.Problem(err, runRoutes) }

// runRoutes words the table's answers for runs.
var runRoutes = edge.Routes{Noun: "run"}

// --- core

// HealthOutput is GET /health.
type HealthOutput struct {
	Body struct {
		Status string `json:"status" example:"healthy" doc:"Always healthy while the server answers."`
	}
}

func (h *handlers) health(context.Context, *struct{}) (*HealthOutput, error) {
	out := &HealthOutput{}
	out.Body.Status = "healthy"
	return out, nil
}

// IdentityBody is the caller's identity as GET /me shows it.
type IdentityBody struct {
	Subject string   `json:"subject" example:"alice" doc:"Stable identifier of the caller."`
	Name    string   `json:"name" example:"Alice Liddell" doc:"Display name of the caller, else its subject: always present, as Flyte's clients expect."`
	Email   string   `json:"email,omitempty" example:"alice@example.com"`
	Groups  []string `json:"groups" example:"[\"ml-team\"]"`
}

// MeOutput is GET /me.
type MeOutput struct{ Body IdentityBody }

func (h *handlers) me(ctx context.Context, _ *struct{}) (*MeOutput, error) {
	id := caller(ctx)
	groups := id.Groups
	if groups == nil {
		groups = []string{}
	}
	name := id.Name
	if name == "" {
		name = id.Subject
	}
	return &MeOutput{Body: IdentityBody{Subject: id.Subject, Name: name, Email: id.Email, Groups: groups}}, nil
}

// --- tasks

// TaskSummary is one task in GET /tasks.
type TaskSummary struct {
	Project     string `json:"project" example:"demo"`
	Domain      string `json:"domain" example:"development"`
	Name        string `json:"name" example:"echo"`
	Version     string `json:"version" example:"v1a2b3c4d5e6f"`
	Description string `json:"description,omitempty"`
	URL         string `json:"url" example:"/task/demo/development/echo"`
}

// ListTasksOutput is GET /tasks.
type ListTasksOutput struct {
	Body struct {
		Tasks []TaskSummary `json:"tasks"`
	}
}

func (h *handlers) summary(d *tasks.Definition) TaskSummary {
	return TaskSummary{
		Project: d.Project, Domain: d.Domain, Name: d.Name, Version: d.Version, Description: d.Description,
		URL: h.w.prefixed("/task/" + d.ID()),
	}
}

func (w *Environment) prefixed(p string) string { return w.cfg.PathPrefix + p }

func (h *handlers) listTasks(context.Context, *struct{}) (*ListTasksOutput, error) {
	out := &ListTasksOutput{}
	out.Body.Tasks = lo.FilterMap(h.deps.Registry.All(), func(d *tasks.Definition, _ int) (TaskSummary, bool) {
		return h.summary(d), h.w.Allowed(d)
	})
	return out, nil
}

// TaskPath names a task in a path.
type TaskPath struct {
	Project string `path:"project" example:"demo" doc:"Project of the task."`
	Domain  string `path:"domain" example:"development" doc:"Domain of the task."`
	Name    string `path:"name" example:"echo" doc:"Name of the task."`
}

// TaskDetail is GET /task/{project}/{domain}/{name}.
type TaskDetail struct {
	TaskSummary
	InputSchema  any               `json:"input_schema" doc:"JSON Schema of the inputs (the run-task body)."`
	OutputSchema any               `json:"output_schema" doc:"JSON Schema of the outputs."`
	Resources    tasks.Resources   `json:"resources"`
	Retry        RetryBody         `json:"retry"`
	Timeout      string            `json:"timeout" example:"1h0m0s"`
	Request      tasks.Request     `json:"resource_request"`
	Labels       map[string]string `json:"labels,omitempty"`
}

// RetryBody is a retry policy with durations as text.
type RetryBody struct {
	MaxAttempts    int     `json:"max_attempts"`
	InitialBackoff string  `json:"initial_backoff"`
	MaxBackoff     string  `json:"max_backoff"`
	Multiplier     float64 `json:"multiplier"`
	Jitter         float64 `json:"jitter"`
}

// GetTaskOutput is GET /task/{project}/{domain}/{name}.
type GetTaskOutput struct{ Body TaskDetail }

// lookupTask finds an allowed task: unknown is 404, outside the allowlist 403.
func (h *handlers) lookupTask(ctx context.Context, p TaskPath) (*tasks.Definition, error) {
	d, ok := h.deps.Registry.Lookup(p.Project, p.Domain, p.Name)
	if !ok {
		return nil, huma.Error404NotFound(fmt.Sprintf("task %s/%s/%s not found", p.Project, p.Domain, p.Name))
	}
	if !h.w.Allowed(d) {
		report.Refuse(ctx, report.ForbiddenTask)
		return nil, huma.Error403Forbidden(fmt.Sprintf("task %s is not allowed in this environment", d.ID()))
	}
	return d, nil
}

func (h *handlers) getTask(ctx context.Context, in *TaskPath) (*GetTaskOutput, error) {
	d, err := h.lookupTask(ctx, *in)
	if err != nil {
		return nil, err
	}
	reg := h.api.OpenAPI().Components.Schemas
	s := h.schemasOf(d)
	return &GetTaskOutput{Body: TaskDetail{
		TaskSummary:  h.summary(d),
		InputSchema:  deref(reg, s.in),
		OutputSchema: deref(reg, s.out),
		Resources:    d.Resources,
		Request:      d.Request,
		Retry: RetryBody{
			MaxAttempts: d.Retry.MaxAttempts, InitialBackoff: d.Retry.InitialBackoff.String(),
			MaxBackoff: d.Retry.MaxBackoff.String(), Multiplier: d.Retry.Multiplier, Jitter: d.Retry.Jitter,
		},
		Timeout: d.Timeout.String(),
	}}, nil
}

// deref resolves a top-level $ref so GET /task shows the schema itself.
func deref(reg huma.Registry, s *huma.Schema) *huma.Schema {
	if s != nil && s.Ref != "" {
		if r := reg.SchemaFromRef(s.Ref); r != nil {
			return r
		}
	}
	return s
}

// RunTaskInput is POST /run-task/{project}/{domain}/{name}.
type RunTaskInput struct {
	TaskPath
	RunOptions
}

// RunOptions are what a run-task request says besides the task: its
// headers, query and body. They are the whole input of a task's own
// operation (POST /run-task/demo/development/echo).
type RunOptions struct {
	IdempotencyKey string   `header:"Idempotency-Key" maxLength:"255" doc:"Retries with the same key return the same run; sent at most once."`
	Prefer         string   `header:"Prefer" example:"wait=10" doc:"wait=N: wait up to N seconds (at most 60) for the result."`
	Webhook        string   `query:"webhook" maxLength:"2048" doc:"URL that gets a signed callback (Standard Webhooks) when the run completes."`
	WebhookEvents  []string `query:"webhook_events_filter" enum:"start,completed" doc:"Events that trigger the callback; default completed."`
	Priority       int      `query:"priority" minimum:"-100" maximum:"100" doc:"Higher runs first; default 0."`
	RawBody        []byte
}

// Resolve refuses a request with more than one Idempotency-Key: huma
// would read the first, and a proxy or the run's owner the other.
func (in *RunOptions) Resolve(ctx huma.Context) []error {
	n := 0
	ctx.EachHeader(func(name, _ string) {
		if strings.EqualFold(name, "Idempotency-Key") {
			n++
		}
	})
	if n > 1 {
		return []error{&badRequestDetail{huma.ErrorDetail{
			Message: "Idempotency-Key may be sent once", Location: "header.Idempotency-Key",
		}}}
	}
	return nil
}

// badRequestDetail is an error detail that makes huma answer 400 rather
// than its 422 for bad input. (Embedding huma.ErrorDetail would not do:
// the field's name hides the ErrorDetail method huma looks for.)
type badRequestDetail struct{ detail huma.ErrorDetail }

func (e *badRequestDetail) Error() string                  { return e.detail.Error() }
func (e *badRequestDetail) ErrorDetail() *huma.ErrorDetail { return &e.detail }
func (e *badRequestDetail) GetStatus() int                 { return http.StatusBadRequest }

// RunAccepted is the body of POST /run-task.
type RunAccepted struct {
	Name    string          `json:"name" example:"r7q2m4x9k3p8s1t6v5w0"`
	URL     string          `json:"url" example:"/run/r7q2m4x9k3p8s1t6v5w0"`
	Phase   tasks.Phase     `json:"phase" example:"queued"`
	Done    bool            `json:"done"`
	Outputs json.RawMessage `json:"outputs,omitempty" doc:"Present when the run succeeded within Prefer: wait."`
	Error   string          `json:"error,omitempty"`
}

// RunTaskOutput is the response of POST /run-task.
type RunTaskOutput struct {
	Status            int
	Location          string `header:"Location"`
	PreferenceApplied string `header:"Preference-Applied"`
	Body              RunAccepted
}

func (h *handlers) runTask(ctx context.Context, in *RunTaskInput) (*RunTaskOutput, error) {
	d, err := h.lookupTask(ctx, in.TaskPath)
	if err != nil {
		return nil, err
	}
	return h.start(ctx, d, &in.RunOptions)
}

// start starts a run of the allowed task d.
func (h *handlers) start(ctx context.Context, d *tasks.Definition, in *RunOptions) (*RunTaskOutput, error) {
	if err := edge.CheckText("header.Idempotency-Key", in.IdempotencyKey); err != nil {
		return nil, err
	}
	inputs, err := h.validateInputs(d, in.RawBody)
	if err != nil {
		return nil, err
	}
	events, err := edge.WebhookParams(in.Webhook, in.WebhookEvents)
	if err != nil {
		return nil, err
	}
	wait := parsePreferWait(in.Prefer, h.w.cfg.MaxWait)
	run, _, err := h.deps.Dispatcher.Submit(ctx, dispatch.SubmitRequest{
		Task: d, Inputs: inputs, Caller: caller(ctx),
		IdempotencyKey: in.IdempotencyKey, Priority: in.Priority,
		Webhook: in.Webhook, WebhookEvents: events,
	})
	if err != nil {
		return nil, h.problem(err)
	}
	out := &RunTaskOutput{Status: http.StatusAccepted, Location: h.w.runURL(run.Name)}
	if wait > 0 {
		out.PreferenceApplied = "wait=" + strconv.FormatFloat(wait.Seconds(), 'f', -1, 64)
		wctx, cancel := context.WithTimeout(ctx, wait)
		waited, werr := h.deps.Dispatcher.Wait(wctx, run.Name)
		cancel()
		if werr == nil && waited != nil {
			run = waited
		} else if waited != nil {
			run = waited
		}
		if run.Done() {
			out.Status = http.StatusOK
		}
	}
	out.Body = RunAccepted{Name: run.Name, URL: out.Location, Phase: run.Phase, Done: run.Done(), Error: run.Error}
	if run.Done() {
		out.Body.Outputs = run.Outputs
	}
	return out, nil
}

// validateInputs checks the body against the task's input schema before any
// run exists: each bad field is named in the 422.
func (h *handlers) validateInputs(d *tasks.Definition, raw []byte) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, huma.Error400BadRequest("request body is not valid JSON", &huma.ErrorDetail{
			Message: err.Error(), Location: "body",
		})
	}
	// encoding/json has turned invalid UTF-8 and lone surrogates into
	// U+FFFD in v; the stored inputs are raw, so they are checked raw.
	if err := edge.CheckJSONText("body", raw); err != nil {
		return nil, err
	}
	if _, ok := v.(map[string]any); !ok && d.InputType.Kind() == reflect.Struct {
		return nil, huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{
			Message: "expected a JSON object of inputs", Location: "body",
		})
	}
	s := h.schemasOf(d)
	reg := h.api.OpenAPI().Components.Schemas
	pb := huma.NewPathBuffer([]byte("body"), len("body"))
	res := &huma.ValidateResult{}
	huma.Validate(reg, deref(reg, s.in), pb, huma.ModeWriteToServer, v, res)
	if len(res.Errors) > 0 {
		return nil, huma.Error422UnprocessableEntity("validation failed", pointAtMissing(res.Errors)...)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, huma.Error422UnprocessableEntity("request body is not valid JSON")
	}
	return buf.Bytes(), nil
}

// pointAtMissing moves a missing required property's error from the
// object to the property itself ("body.message"), so each error names the
// field the caller must fix.
func pointAtMissing(errs []error) []error {
	prefix, suffix, _ := strings.Cut(validation.MsgExpectedRequiredProperty, "%s")
	for _, e := range errs {
		var d *huma.ErrorDetail
		if errors.As(e, &d) && strings.HasPrefix(d.Message, prefix) && strings.HasSuffix(d.Message, suffix) {
			prop := strings.TrimSuffix(strings.TrimPrefix(d.Message, prefix), suffix)
			d.Location += "." + prop
			d.Value = nil
		}
	}
	return errs
}

// parsePreferWait reads wait=N from a Prefer header (RFC 7240) as a
// duration of at most max. N is delta-seconds; a decimal, an exponent or
// Infinity is read as the number it spells. A value too large to hold, or
// above max, is max: the client asked to wait as long as it may. A value
// that is not a number of seconds (NaN, negative, text) is ignored, as RFC
// 7240 has a server ignore a preference it cannot comply with, and so are
// other preferences; the first wait counts.
func parsePreferWait(prefer string, max time.Duration) time.Duration {
	for _, part := range strings.FieldsFunc(prefer, func(r rune) bool { return r == ',' || r == ';' }) {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "wait") {
			continue
		}
		n, err := strconv.ParseFloat(strings.Trim(strings.TrimSpace(v), `"`), 64)
		switch {
		case errors.Is(err, strconv.ErrRange) && n > 0, n >= max.Seconds():
			return max // also +Inf, and huge integers that overflow a float
		case err != nil, math.IsNaN(n), n <= 0:
			return 0
		}
		return time.Duration(n * float64(time.Second))
	}
	return 0
}
