package client

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"time"

	sse "github.com/tmaxmax/go-sse"

	"github.com/taskgate/taskgate/tasks"
)

// Run submits a run of task t with inputs in, waits for it to end and
// returns its typed outputs. A run that did not succeed is a *RunError.
//
//	out, err := client.Run(ctx, c, demo.Echo, demo.EchoInput{Message: "hi"})
func Run[I, O any](ctx context.Context, c *Client, t *tasks.Task[I, O], in I) (O, error) {
	var zero O
	sub, err := Start(ctx, c, t, in, nil)
	if err != nil {
		return zero, err
	}
	st, err := c.Wait(ctx, sub.Name, nil)
	if err != nil {
		return zero, err
	}
	if st.Phase != tasks.PhaseSucceeded {
		return zero, &RunError{Run: st}
	}
	return Outputs[O](ctx, c, sub.Name)
}

// Start submits a run of task t with inputs in: Submit, typed by the
// task's definition.
func Start[I, O any](ctx context.Context, c *Client, t *tasks.Task[I, O], in I, opts *SubmitOptions) (*Submitted, error) {
	return c.Submit(ctx, t.Definition().ID(), in, opts)
}

// Outputs reads the outputs of the succeeded run name into an O (the
// output type of its task).
func Outputs[O any](ctx context.Context, c *Client, name string) (O, error) {
	var out O
	rio, err := c.IO(ctx, name)
	if err != nil {
		return out, err
	}
	if len(rio.Outputs) == 0 || string(rio.Outputs) == "null" {
		return out, fmt.Errorf("client: run %s has no outputs: it has not succeeded", name)
	}
	if err := json.Unmarshal(rio.Outputs, &out); err != nil {
		return out, fmt.Errorf("client: outputs of run %s: %w", name, err)
	}
	return out, nil
}

// WaitOptions are the options of Wait. Nil is valid.
type WaitOptions struct {
	// OnStatus is called with each status Wait reads: after each phase
	// change and, while the run waits to be placed, every PollInterval, so
	// that its queue position and waiting reason can be shown.
	OnStatus func(*RunStatus)
	// PollInterval is the slowest pace of reading the status when no
	// event stream is available, and the pace while the run waits to be
	// placed if OnStatus is set; default 1 s.
	PollInterval time.Duration
}

// safetyPoll reads the status now and then even while events stream, so
// a stream that silently stopped delivering cannot hold Wait forever.
const safetyPoll = 30 * time.Second

// Wait follows run name until it ends and returns its final status. It
// listens to the run's event stream and reads the status at each phase
// change; where the stream is not available (an environment that does not
// serve it, a proxy that buffers it) it polls GET /run/{name}, from 100 ms
// up to PollInterval apart. A run that ended in failure is not an error
// here: check the status's Phase (Run returns a *RunError).
func (c *Client) Wait(ctx context.Context, name string, opts *WaitOptions) (*RunStatus, error) {
	if opts == nil {
		opts = &WaitOptions{}
	}
	interval := opts.PollInterval
	if interval <= 0 {
		interval = time.Second
	}
	notify := func(st *RunStatus) {
		if opts.OnStatus != nil {
			opts.OnStatus(st)
		}
	}
	st, err := c.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	notify(st)
	if st.Done {
		return st, nil
	}

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changed := make(chan struct{}, 1)
	streamEnded := make(chan struct{})
	go func() {
		defer close(streamEnded)
		for _, err := range c.Events(sctx, name) {
			if err != nil {
				return
			}
			select {
			case changed <- struct{}{}:
			default:
			}
		}
	}()

	streaming := true
	fallback := 100 * time.Millisecond
	next := func() time.Duration {
		switch {
		case !streaming:
			d := fallback
			fallback = min(fallback*2, interval)
			return d
		case opts.OnStatus != nil && waitingToBePlaced(st.Phase):
			return interval
		}
		return safetyPoll
	}
	timer := time.NewTimer(next())
	defer timer.Stop()
	for {
		select {
		case <-changed:
		case <-streamEnded:
			streamEnded, streaming = nil, false
		case <-timer.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if st, err = c.Get(ctx, name); err != nil {
			return nil, err
		}
		notify(st)
		if st.Done {
			return st, nil
		}
		timer.Reset(next())
	}
}

func waitingToBePlaced(p tasks.Phase) bool {
	return p == tasks.PhaseQueued || p == tasks.PhaseWaitingForResources
}

// Events yields the phase changes of run name, from its first, as the
// server streams them (GET /run/{name}/events), and ends after the
// terminal one. A stream that breaks (a dropped connection, a restarted
// server) is resumed after the last event seen (Last-Event-ID). An error
// is yielded once and ends the iteration: an *Error (404: no such run, or
// an environment without the stream), or the context's.
func (c *Client) Events(ctx context.Context, name string) iter.Seq2[tasks.Event, error] {
	return func(yield func(tasks.Event, error) bool) {
		cl := call{method: http.MethodGet, path: "/run/" + url.PathEscape(name) + "/events", idempotent: true}
		err := c.follow(ctx, cl, 0, "the event stream of run "+name, func(ev sse.Event) (int64, bool, error) {
			if ev.Type != "phase" {
				return 0, false, nil
			}
			var e tasks.Event
			if err := json.Unmarshal([]byte(ev.Data), &e); err != nil {
				return 0, false, fmt.Errorf("client: event of run %s: %w", name, err)
			}
			return e.Seq, !yield(e, nil) || e.Phase.Terminal(), nil
		})
		if err != nil {
			yield(tasks.Event{}, err)
		}
	}
}
