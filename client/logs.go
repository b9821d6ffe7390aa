package client

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
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
		cl := call{method: http.MethodGet, path: "/run/" + url.PathEscape(name) + "/logs", query: url.Values{"follow": {"1"}}, idempotent: true}
		err := c.follow(ctx, cl, opts.After, "the log stream of run "+name, func(ev sse.Event) (int64, bool, error) {
			if ev.Type != "log" {
				return 0, ev.Type == "end", nil
			}
			var l LogLine
			if err := json.Unmarshal([]byte(ev.Data), &l); err != nil {
				return 0, false, fmt.Errorf("client: log line of run %s: %w", name, err)
			}
			return l.Seq, !yield(l, nil), nil
		})
		if err != nil {
			yield(LogLine{}, err)
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
