package client

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	sse "github.com/tmaxmax/go-sse"
)

// streamIdleTimeout ends a stream that sent nothing, not even the
// server's keep-alive comment (every 15 s), for this long: the connection
// is dead without having been closed. The stream is then resumed.
const streamIdleTimeout = time.Minute

// lastingStream is how long a stream that ended without a new event must
// have lasted to count as a healthy one rather than a fruitless one: the
// server ends each stream after a few minutes (and at the end of the
// caller's session), and a run may bring no event for hours. A var for
// the tests.
var lastingStream = 30 * time.Second

// follow reads the event stream of cl, after the event seq after, until
// handle is done, resuming a stream that breaks or ends after the last
// event seen (Last-Event-ID), with backoff while streams in a row bring
// no new event. handle returns an event's seq (0 for an event that does
// not count). The error is the request's, handle's, the context's, or
// that the stream stalled; what names the stream in the latter.
func (c *Client) follow(ctx context.Context, cl call, after int64, what string, handle func(sse.Event) (seq int64, done bool, err error)) error {
	fruitless := 0 // streams in a row that ended with no new event
	for {
		got := after
		if after > 0 {
			cl.header = http.Header{"Last-Event-Id": {strconv.FormatInt(after, 10)}}
		}
		opened := time.Now()
		done, err := c.readStream(ctx, &cl, func(ev sse.Event) (bool, error) {
			seq, done, err := handle(ev)
			got = max(got, seq)
			return done, err
		})
		switch {
		case done:
			return nil
		case err != nil:
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		}
		if got > after || time.Since(opened) >= lastingStream {
			after, fruitless = got, 0
			continue
		}
		fruitless++
		if fruitless >= c.retry.MaxAttempts {
			return fmt.Errorf("client: %s ended %d times without a new event", what, fruitless)
		}
		t := time.NewTimer(c.retry.backoff(fruitless))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// readStream reads one event stream of cl, handing each event to handle
// until handle is done or fails. A stream that breaks or ends is neither
// done nor an error (the caller resumes it); an answer that is not an
// event stream is an *Error.
func (c *Client) readStream(ctx context.Context, cl *call, handle func(sse.Event) (done bool, err error)) (bool, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := c.open(sctx, cl, "text/event-stream")
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return false, &Error{Status: resp.StatusCode, Title: "not an event stream", Detail: fmt.Sprintf("%s %s answered %q", cl.method, cl.path, mt)}
	}
	idle := time.AfterFunc(streamIdleTimeout, cancel)
	defer idle.Stop()
	body := &activityReader{r: resp.Body, touch: func() { idle.Reset(streamIdleTimeout) }}
	for ev, err := range sse.Read(body, nil) {
		if err != nil {
			return false, nil
		}
		if done, err := handle(ev); done || err != nil {
			return done, err
		}
	}
	return false, nil
}

// activityReader calls touch on every read that got bytes.
type activityReader struct {
	r     io.Reader
	touch func()
}

func (a *activityReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.touch()
	}
	return n, err
}
