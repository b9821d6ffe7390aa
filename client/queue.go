package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	sse "github.com/tmaxmax/go-sse"
)

// The queue routes of an app environment (environments/queue), in
// fal's style: a request to one of the app's routes is stored, replayed
// through the scheduler, and its response kept. Make the Client with the
// app environment's base URL.

// The statuses of a queued request.
const (
	QueueInQueue    = "IN_QUEUE"
	QueueInProgress = "IN_PROGRESS"
	QueueCompleted  = "COMPLETED"
)

// QueueSubmitted is the answer of QueueSubmit: the request's id and where
// to follow it (paths on the environment's host).
type QueueSubmitted struct {
	RequestID   string `json:"request_id"`
	Status      string `json:"status"`
	StatusURL   string `json:"status_url"`
	ResponseURL string `json:"response_url"`
	CancelURL   string `json:"cancel_url"`
}

// QueueStatus is where a queued request stands.
type QueueStatus struct {
	RequestID string `json:"request_id"`
	// Status is QueueInQueue, QueueInProgress or QueueCompleted.
	Status string `json:"status"`
	// QueuePosition counts the requests ahead: 0 when next or started.
	QueuePosition int    `json:"queue_position"`
	ResponseURL   string `json:"response_url"`
	// Error and ErrorType (CANCELLED, START_TIMEOUT, TIMED_OUT, FAILED)
	// say why a completed request has no response.
	Error     string     `json:"error,omitempty"`
	ErrorType string     `json:"error_type,omitempty"`
	Logs      []QueueLog `json:"logs,omitempty"`
}

// QueueLog is one line logged while the request was replayed.
type QueueLog struct {
	Timestamp time.Time       `json:"timestamp"`
	Level     string          `json:"level"`
	Message   string          `json:"message"`
	Attrs     json.RawMessage `json:"attrs,omitempty"`
}

// QueueResponse is the response the app gave a queued request, as it
// wrote it: any status, its headers, its body.
type QueueResponse struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// QueueSubmitOptions are the options of QueueSubmit. Nil is valid.
type QueueSubmitOptions struct {
	// ContentType of the body; default application/json.
	ContentType string
	// Header holds other headers to keep with the request (content
	// headers, custom X- headers); credentials are never kept.
	Header http.Header
	// Query is the query string of the queued request.
	Query url.Values
	// LowPriority runs the request after every normal one waiting with it.
	LowPriority bool
	// StartTimeout completes the request with START_TIMEOUT if it has not
	// started by then; zero waits without limit.
	StartTimeout time.Duration
	// Webhook gets a signed callback when the request completes, or for
	// WebhookEvents ("start", "completed").
	Webhook       string
	WebhookEvents []string
}

// queueRecordedHeader marks a response the app wrote for a queued request
// (the queue sets it), as against the queue's own problems.
const queueRecordedHeader = "X-Queue-Request-Id"

// QueueSubmit queues a POST of body to the app's route path ("generate",
// "v1/images?size=2"). It is sent again only when it surely never reached
// the server: the queue keeps no idempotency key.
func (c *Client) QueueSubmit(ctx context.Context, path string, body []byte, opts *QueueSubmitOptions) (*QueueSubmitted, error) {
	if opts == nil {
		opts = &QueueSubmitOptions{}
	}
	path, rawQuery, _ := strings.Cut(strings.TrimPrefix(path, "/"), "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, fmt.Errorf("client: queue path %q: %w", path, err)
	}
	for k, vs := range opts.Query {
		q[k] = append(q[k], vs...)
	}
	if opts.Webhook != "" {
		q.Set("webhook", opts.Webhook)
		for _, e := range opts.WebhookEvents {
			q.Add("webhook_events_filter", e)
		}
	}
	h := http.Header{}
	for k, vs := range opts.Header {
		h[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
	}
	if opts.ContentType != "" {
		h.Set("Content-Type", opts.ContentType)
	}
	if opts.LowPriority {
		h.Set("X-Queue-Priority", "low")
	}
	if opts.StartTimeout > 0 {
		h.Set("X-Queue-Start-Timeout", strconv.FormatFloat(opts.StartTimeout.Seconds(), 'f', -1, 64))
	}
	if body == nil {
		body = []byte{}
	}
	cl := &call{method: http.MethodPost, path: "/queue/submit/" + path, header: h, body: body}
	if len(q) > 0 {
		cl.query = q
	}
	rep, err := c.roundTrip(ctx, cl)
	if err != nil {
		return nil, err
	}
	var out QueueSubmitted
	if err := c.decode(rep, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func queuePath(id string) string { return "/queue/requests/" + url.PathEscape(id) }

// QueueStatus reads a queued request's status; logs adds the lines its
// replay logged.
func (c *Client) QueueStatus(ctx context.Context, id string, logs bool) (*QueueStatus, error) {
	var q url.Values
	if logs {
		q = url.Values{"logs": {"1"}}
	}
	var out QueueStatus
	if err := c.getJSON(ctx, queuePath(id)+"/status", q, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// QueueResult reads the response of a completed request. A request not
// completed yet is a 400 *Error with Code IN_QUEUE or IN_PROGRESS; one
// that completed without a response an *Error whose Code says why
// (CANCELLED, START_TIMEOUT, TIMED_OUT, FAILED).
func (c *Client) QueueResult(ctx context.Context, id string) (*QueueResponse, error) {
	rep, err := c.roundTrip(ctx, &call{method: http.MethodGet, path: queuePath(id), idempotent: true, recorded: queueRecordedHeader})
	if err != nil {
		return nil, err
	}
	return &QueueResponse{StatusCode: rep.status, Header: rep.header, Body: rep.body}, nil
}

// QueueCancel cancels a queued request: one in the queue is removed, one
// in progress has its context cancelled. A completed request is a 400
// *Error with Code ALREADY_COMPLETED.
func (c *Client) QueueCancel(ctx context.Context, id string) error {
	_, err := c.roundTrip(ctx, &call{method: http.MethodPut, path: queuePath(id) + "/cancel"})
	return err
}

// QueueWait follows a queued request until it completed, through its
// status stream, else by polling its status, and returns the final
// status. onStatus, when not nil, gets each status seen (queue position
// included).
func (c *Client) QueueWait(ctx context.Context, id string, onStatus func(*QueueStatus)) (*QueueStatus, error) {
	if onStatus == nil {
		onStatus = func(*QueueStatus) {}
	}
	stream := true
	for n := 1; ; n++ {
		if stream {
			st, err := c.queueStream(ctx, id, onStatus)
			if st != nil && st.Status == QueueCompleted {
				return st, nil
			}
			var apiErr *Error
			if errors.As(err, &apiErr) {
				// No stream here (or no such request: the status says).
				stream = false
			}
		}
		st, err := c.QueueStatus(ctx, id, false)
		if err != nil {
			return nil, err
		}
		onStatus(st)
		if st.Status == QueueCompleted {
			return st, nil
		}
		t := time.NewTimer(min(c.retry.backoff(n), time.Second))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
}

// queueStream reads a request's status stream and returns the last status
// it sent.
func (c *Client) queueStream(ctx context.Context, id string, onStatus func(*QueueStatus)) (*QueueStatus, error) {
	var last *QueueStatus
	_, err := c.readStream(ctx, &call{method: http.MethodGet, path: queuePath(id) + "/status/stream", idempotent: true}, func(ev sse.Event) (bool, error) {
		var st QueueStatus
		if err := json.Unmarshal([]byte(ev.Data), &st); err != nil {
			return false, fmt.Errorf("client: status of queued request %s: %w", id, err)
		}
		last = &st
		onStatus(last)
		return st.Status == QueueCompleted, nil
	})
	return last, err
}
