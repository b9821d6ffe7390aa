package client

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"

	sse "github.com/tmaxmax/go-sse"
)

// LogLine is one line of a run's logs (GET /run/{name}/logs).
type LogLine struct {
	// Seq orders the lines (it grows, not by one).
	Seq     int64     `json:"seq"`
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Attempt int       `json:"attempt"`
	// Stream is "log" (the task's logger), "stdout" or "stderr" (a
	// subprocess's output).
	Stream  string          `json:"stream"`
	Message string          `json:"message"`
	Attrs   json.RawMessage `json:"attrs,omitempty"`
}

// LogsOptions are the options of Logs. The zero value is valid.
type LogsOptions struct {
	// Follow keeps yielding lines as the run writes them, until it ends.
	Follow bool
	// After skips the lines up to this Seq.
	After int64
}

// logsPage is GET /run/{name}/logs without follow.
type logsPage struct {
	Lines     []LogLine `json:"lines"`
	NextAfter int64     `json:"next_after"`
}

// Logs yields the log lines of run name, oldest first: those stored, or
// with opts.Follow also those to come, until the run ends (from the
// server's event stream, resumed after the last line seen when it breaks,
// as Events is). An error is yielded once and ends the iteration: an
// *Error (404: no such run), or the context's.
func (c *Client) Logs(ctx context.Context, name string, opts *LogsOptions) iter.Seq2[LogLine, error] {
	if opts == nil {
		opts = &LogsOptions{}
	}
	if !opts.Follow {
		return c.logPages(ctx, name, opts.After)
	}
	return func(yield func(LogLine, error) bool) {
		last := opts.After
		fruitless := 0 // streams in a row that ended with no line and no end
		for {
			got, done, err := c.streamLogs(ctx, name, last, yield)
			switch {
			case done:
				return
			case err != nil:
				yield(LogLine{}, err)
				return
			case ctx.Err() != nil:
				yield(LogLine{}, ctx.Err())
				return
			}
			if got > last {
				last, fruitless = got, 0
				continue
			}
			fruitless++
			if fruitless >= c.retry.MaxAttempts {
				yield(LogLine{}, fmt.Errorf("client: the log stream of run %s ended %d times without a line", name, fruitless))
				return
			}
			t := time.NewTimer(c.retry.backoff(fruitless))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				yield(LogLine{}, ctx.Err())
				return
			}
		}
	}
}

// logPages yields the stored lines, a page at a time.
func (c *Client) logPages(ctx context.Context, name string, after int64) iter.Seq2[LogLine, error] {
	return func(yield func(LogLine, error) bool) {
		for {
			var page logsPage
			q := url.Values{"after": {strconv.FormatInt(after, 10)}}
			if err := c.getJSON(ctx, "/run/"+url.PathEscape(name)+"/logs", q, &page); err != nil {
				yield(LogLine{}, err)
				return
			}
			for _, l := range page.Lines {
				if !yield(l, nil) {
					return
				}
			}
			if len(page.Lines) == 0 || page.NextAfter <= after {
				return
			}
			after = page.NextAfter
		}
	}
}

// streamLogs reads one log stream after line seq after, yielding its
// lines. It returns the last seq seen and whether the iteration is over
// (the end event, or the caller stopped).
func (c *Client) streamLogs(ctx context.Context, name string, after int64, yield func(LogLine, error) bool) (int64, bool, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cl := &call{method: http.MethodGet, path: "/run/" + url.PathEscape(name) + "/logs", query: url.Values{"follow": {"1"}}, idempotent: true}
	if after > 0 {
		cl.header = http.Header{"Last-Event-Id": {strconv.FormatInt(after, 10)}}
	}
	resp, err := c.open(sctx, cl, "text/event-stream")
	if err != nil {
		return after, false, err
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return after, false, fmt.Errorf("client: GET %s answered %q, not an event stream", cl.path, mt)
	}
	idle := time.AfterFunc(streamIdleTimeout, cancel)
	defer idle.Stop()
	body := &activityReader{r: resp.Body, touch: func() { idle.Reset(streamIdleTimeout) }}
	for ev, err := range sse.Read(body, nil) {
		switch {
		case err != nil:
			return after, false, nil // a broken stream is resumed by the caller
		case ev.Type == "end":
			return after, true, nil
		case ev.Type != "log":
			continue
		}
		var l LogLine
		if err := json.Unmarshal([]byte(ev.Data), &l); err != nil {
			return after, false, fmt.Errorf("client: log line of run %s: %w", name, err)
		}
		after = l.Seq
		if !yield(l, nil) {
			return after, true, nil
		}
	}
	return after, false, nil
}
