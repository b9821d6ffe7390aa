package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/taskgate/taskgate/tasks"
)

// Submitted is the answer of a submit: the run's name and, when it ended
// within SubmitOptions.Wait, its outcome.
type Submitted struct {
	Name  string      `json:"name"`
	URL   string      `json:"url"`
	Phase tasks.Phase `json:"phase"`
	Done  bool        `json:"done"`
	// Outputs are the run's outputs when it succeeded within Wait.
	Outputs json.RawMessage `json:"outputs,omitempty"`
	Error   string          `json:"error,omitempty"`
}

// RunStatus is a run as GET /run/{name} and GET /runs show it.
type RunStatus struct {
	Name string `json:"name"`
	// Task is "project/domain/name".
	Task  string      `json:"task"`
	Phase tasks.Phase `json:"phase"`
	URL   string      `json:"url"`
	Done  bool        `json:"done"`
	// QueuePosition is 1 for the next run to be placed, 0 once placed.
	QueuePosition int `json:"queue_position"`
	// Reason says why a waiting run waits.
	Reason   string          `json:"reason,omitempty"`
	Attempt  int             `json:"attempt"`
	Attempts []tasks.Attempt `json:"attempts"`
	Node     string          `json:"node,omitempty"`
	Devices  []string        `json:"devices,omitempty"`
	Error    string          `json:"error,omitempty"`
	// Progress is the latest progress the task reported; nil until it
	// reports.
	Progress   *tasks.RunProgress `json:"progress,omitempty"`
	Deliveries []Delivery         `json:"deliveries,omitempty"`
	CreatedAt  time.Time          `json:"created_at"`
	StartedAt  *time.Time         `json:"started_at,omitempty"`
	FinishedAt *time.Time         `json:"finished_at,omitempty"`
}

// Delivery is one signed webhook callback of a run.
type Delivery struct {
	ID    string `json:"id"`
	Event string `json:"event"`
	// URL is the callback URL without its query.
	URL      string            `json:"url"`
	State    string            `json:"state"`
	Attempts []DeliveryAttempt `json:"attempts"`
}

// DeliveryAttempt is one try of a Delivery.
type DeliveryAttempt struct {
	At            time.Time `json:"at"`
	StatusCode    int       `json:"status_code,omitempty"`
	Error         string    `json:"error,omitempty"`
	Done          bool      `json:"done"`
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
}

// RunIO is a run's inputs and, once it succeeded, its outputs (JSON null
// before).
type RunIO struct {
	Name    string          `json:"name"`
	Inputs  json.RawMessage `json:"inputs"`
	Outputs json.RawMessage `json:"outputs"`
}

// SubmitOptions are the options of one submit. Nil is valid.
type SubmitOptions struct {
	// IdempotencyKey makes submits with the same key and body return the
	// same run; default a random key per call, kept across the call's
	// retries.
	IdempotencyKey string
	// Priority orders runs that wait: higher first, -100 to 100.
	Priority int
	// Webhook gets a signed callback (Standard Webhooks) when the run
	// completes, or for WebhookEvents ("start", "completed").
	Webhook       string
	WebhookEvents []string
	// Wait (at most 60 s) holds the answer until the run ends or Wait
	// passes (Prefer: wait); the outputs come with it when the run
	// succeeded. Zero answers at once.
	Wait time.Duration
}

// Submit starts a run of task ("project/domain/name") with inputs, any
// value that encodes to the task's JSON object of inputs (a
// json.RawMessage is sent as it is; nil is no inputs, {}). Start is its
// typed form.
func (c *Client) Submit(ctx context.Context, task string, inputs any, opts *SubmitOptions) (*Submitted, error) {
	if opts == nil {
		opts = &SubmitOptions{}
	}
	parts := strings.Split(task, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return nil, fmt.Errorf("client: task %q: want project/domain/name", task)
	}
	if inputs == nil {
		inputs = json.RawMessage("{}")
	}
	body, err := jsonBody(inputs)
	if err != nil {
		return nil, err
	}
	key := opts.IdempotencyKey
	if key == "" {
		key = newID()
	}
	cl := &call{
		method: http.MethodPost,
		path:   "/run-task/" + escapeAll(parts...),
		body:   body,
		header: http.Header{"Idempotency-Key": {key}},
		// The key makes a retry return the run of the first attempt.
		idempotent: true,
	}
	q := url.Values{}
	if opts.Priority != 0 {
		q.Set("priority", strconv.Itoa(opts.Priority))
	}
	if opts.Webhook != "" {
		q.Set("webhook", opts.Webhook)
		for _, e := range opts.WebhookEvents {
			q.Add("webhook_events_filter", e)
		}
	}
	if len(q) > 0 {
		cl.query = q
	}
	if opts.Wait > 0 {
		cl.header.Set("Prefer", "wait="+strconv.FormatFloat(opts.Wait.Seconds(), 'f', -1, 64))
		cl.extra = opts.Wait
	}
	rep, err := c.roundTrip(ctx, cl)
	if err != nil {
		return nil, err
	}
	var out Submitted
	if err := c.decode(rep, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// escapeAll path-escapes each segment and joins them with slashes.
func escapeAll(segments ...string) string {
	esc := make([]string, len(segments))
	for i, s := range segments {
		esc[i] = url.PathEscape(s)
	}
	return strings.Join(esc, "/")
}

// Get reads a run. Someone else's run is a 404, as an unknown one.
func (c *Client) Get(ctx context.Context, name string) (*RunStatus, error) {
	var out RunStatus
	if err := c.getJSON(ctx, "/run/"+url.PathEscape(name), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// IO reads a run's inputs and outputs.
func (c *Client) IO(ctx context.Context, name string) (*RunIO, error) {
	var out RunIO
	if err := c.getJSON(ctx, "/run/"+url.PathEscape(name)+"/io", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Abort asks for a run to stop, with a reason kept with it: a queued run
// ends at once, a running one has its context cancelled. A finished run
// is a 409 *Error.
func (c *Client) Abort(ctx context.Context, name, reason string) error {
	cl := &call{method: http.MethodPost, path: "/run/" + url.PathEscape(name) + "/abort"}
	if reason != "" {
		cl.query = url.Values{"reason": {reason}}
	}
	_, err := c.roundTrip(ctx, cl)
	return err
}

// ListOptions filter GET /runs. Nil lists every run of the caller.
type ListOptions struct {
	// Task is "project/domain/name".
	Task   string
	Phases []tasks.Phase
	// CreatedAfter keeps runs created at or after it, CreatedBefore runs
	// created before it; zero is no bound.
	CreatedAfter, CreatedBefore time.Time
	// All lists every caller's runs: the admin group only (403 else).
	All bool
	// PageSize is the number of runs per request, 1 to 200; default 50.
	PageSize int
}

// RunPage is one page of GET /runs; NextCursor is empty on the last.
type RunPage struct {
	Runs       []RunStatus `json:"runs"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

// ListPage reads the page of runs after cursor ("" for the first), newest
// first.
func (c *Client) ListPage(ctx context.Context, opts *ListOptions, cursor string) (*RunPage, error) {
	if opts == nil {
		opts = &ListOptions{}
	}
	q := url.Values{}
	if opts.Task != "" {
		q.Set("task", opts.Task)
	}
	for _, p := range opts.Phases {
		q.Add("phase", string(p))
	}
	if !opts.CreatedAfter.IsZero() {
		q.Set("created_after", opts.CreatedAfter.Format(time.RFC3339Nano))
	}
	if !opts.CreatedBefore.IsZero() {
		q.Set("created_before", opts.CreatedBefore.Format(time.RFC3339Nano))
	}
	if opts.All {
		q.Set("all", "true")
	}
	if opts.PageSize > 0 {
		q.Set("limit", strconv.Itoa(opts.PageSize))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var out RunPage
	if err := c.getJSON(ctx, "/runs", q, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// List yields the caller's runs, newest first, reading the pages as the
// loop goes; break to stop. An error is yielded once, and ends the list.
func (c *Client) List(ctx context.Context, opts *ListOptions) iter.Seq2[*RunStatus, error] {
	return func(yield func(*RunStatus, error) bool) {
		cursor := ""
		for {
			page, err := c.ListPage(ctx, opts, cursor)
			if err != nil {
				yield(nil, err)
				return
			}
			for i := range page.Runs {
				if !yield(&page.Runs[i], nil) {
					return
				}
			}
			if page.NextCursor == "" {
				return
			}
			if page.NextCursor == cursor {
				yield(nil, errors.New("client: GET /runs gave the same cursor twice"))
				return
			}
			cursor = page.NextCursor
		}
	}
}
