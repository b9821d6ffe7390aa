package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/taskgate/taskgate/client"
	"github.com/taskgate/taskgate/tasks"
)

// maxInputBytes bounds the inputs read from a file or stdin; the server's
// default body limit is 10 MiB.
const maxInputBytes = 64 << 20

// result is a run with its outputs, as run --wait and get show them.
type result struct {
	*client.RunStatus
	Outputs json.RawMessage `json:"outputs"`
}

func (c *cli) runCmd() *cobra.Command {
	var (
		data          string
		wait, follow  bool
		opts          client.SubmitOptions
		webhookEvents []string
	)
	cmd := &cobra.Command{
		Use:   "run PROJECT/DOMAIN/NAME [-d JSON|@FILE|-] [--wait|--follow]",
		Short: "Start a run of a task",
		Long: `Start a run of a task with the JSON object of inputs given by -d: the JSON
itself, @FILE to read it from a file, or - to read it from stdin. Without
--wait or --follow it prints the run's name and returns at once.

--wait waits for the run to end and prints its outputs; while it waits, a
status line (phase, queue position, waiting reason) is drawn on stderr
when stderr is a terminal. --follow prints each phase change as it
happens, then the outputs (with -o json, one JSON object per event, then
the run with its outputs). Either way the exit code is 0 only when the
run succeeded (1 when it failed, was aborted or timed out).`,
		Example: `  taskgate run demo/development/echo -d '{"message":"hi"}' --wait
  taskgate run demo/development/train -d @inputs.json --follow
  echo '{"seconds":2}' | taskgate run demo/development/sleep -d - --wait -o json`,
		Args: args(1, "the task, project/domain/name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			inputs, err := c.readInputs(data)
			if err != nil {
				return err
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			opts.WebhookEvents = webhookEvents
			sub, err := cl.Submit(cmd.Context(), a[0], inputs, &opts)
			if err != nil {
				return err
			}
			switch {
			case follow:
				return c.follow(cmd.Context(), cl, sub.Name, cmd.OutOrStdout())
			case wait:
				return c.wait(cmd.Context(), cl, sub.Name, cmd.OutOrStdout())
			case c.json():
				return writeJSON(cmd.OutOrStdout(), sub)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", sub.Name, sub.Phase)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&data, "data", "d", "{}", "inputs: JSON, @FILE, or - for stdin")
	f.BoolVarP(&wait, "wait", "w", false, "wait for the run to end and print its outputs")
	f.BoolVarP(&follow, "follow", "f", false, "print each phase change until the run ends, then its outputs")
	f.IntVar(&opts.Priority, "priority", 0, "higher runs first, -100 to 100")
	f.StringVar(&opts.IdempotencyKey, "idempotency-key", "", "runs with the same key and inputs are one run (default: a new key)")
	f.StringVar(&opts.Webhook, "webhook", "", "URL that gets a signed callback when the run completes")
	f.StringSliceVar(&webhookEvents, "webhook-events", nil, "events that call the webhook: start, completed")
	return cmd
}

// readInputs reads -d: JSON, @FILE or - (stdin), checked to be JSON.
func (c *cli) readInputs(data string) (json.RawMessage, error) {
	var (
		b    []byte
		err  error
		from = "-d"
	)
	switch {
	case data == "-":
		from = "stdin"
		b, err = io.ReadAll(io.LimitReader(c.env.stdin, maxInputBytes))
	case strings.HasPrefix(data, "@"):
		from = data[1:]
		var f *os.File
		if f, err = os.Open(data[1:]); err == nil {
			b, err = io.ReadAll(io.LimitReader(f, maxInputBytes))
			f.Close()
		}
	default:
		b = []byte(data)
	}
	if err != nil {
		return nil, usagef("reading the inputs: %w", err)
	}
	b = bytes.TrimSpace(b)
	if !json.Valid(b) {
		return nil, usagef("the inputs from %s are not JSON", from)
	}
	return b, nil
}

// wait waits for run name, drawing a status line on a terminal, and
// prints the outcome.
func (c *cli) wait(ctx context.Context, cl *client.Client, name string, out io.Writer) error {
	var w io.Writer
	if c.env.terminal(c.env.stderr) {
		w = c.env.stderr
	}
	line := newStatusLine(w)
	st, err := cl.Wait(ctx, name, &client.WaitOptions{OnStatus: line.Update})
	line.Done()
	if err != nil {
		return c.stoppedWaiting(ctx, name, err)
	}
	return c.printOutcome(ctx, cl, st, out)
}

// follow prints each phase change of run name, then its outcome.
func (c *cli) follow(ctx context.Context, cl *client.Client, name string, out io.Writer) error {
	for ev, err := range cl.Events(ctx, name) {
		if err != nil {
			if ctx.Err() != nil {
				return c.stoppedWaiting(ctx, name, err)
			}
			// No event stream here: wait by polling, reporting each phase.
			last := tasks.Phase("")
			_, werr := cl.Wait(ctx, name, &client.WaitOptions{OnStatus: func(st *client.RunStatus) {
				if st.Phase != last {
					last = st.Phase
					c.printEvent(out, tasks.Event{Run: st.Name, Phase: st.Phase, At: time.Now(), Error: st.Error})
				}
			}})
			if werr != nil {
				return c.stoppedWaiting(ctx, name, werr)
			}
			break
		}
		c.printEvent(out, ev)
	}
	st, err := cl.Get(ctx, name)
	if err != nil {
		return err
	}
	return c.printOutcome(ctx, cl, st, out)
}

func (c *cli) printEvent(out io.Writer, ev tasks.Event) {
	if c.json() {
		b, _ := json.Marshal(ev)
		fmt.Fprintf(out, "%s\n", b)
		return
	}
	line := fmt.Sprintf("%s  %s", ev.At.Local().Format("15:04:05.000"), ev.Phase)
	if ev.Error != "" {
		line += "  " + ev.Error
	}
	fmt.Fprintln(out, line)
}

// stoppedWaiting explains an interrupted wait: the run goes on.
func (c *cli) stoppedWaiting(ctx context.Context, name string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("stopped waiting; run %s goes on (taskgate get %s): %w", name, name, err)
	}
	return err
}

// printOutcome prints a finished run: its outputs when it succeeded, and a
// *client.RunError when it did not.
func (c *cli) printOutcome(ctx context.Context, cl *client.Client, st *client.RunStatus, out io.Writer) error {
	res := result{RunStatus: st, Outputs: json.RawMessage("null")}
	if st.Phase == tasks.PhaseSucceeded {
		rio, err := cl.IO(ctx, st.Name)
		if err != nil {
			return err
		}
		res.Outputs = rio.Outputs
	}
	switch {
	case c.json():
		if err := writeJSON(out, res); err != nil {
			return err
		}
	case st.Phase == tasks.PhaseSucceeded:
		var pretty bytes.Buffer
		if json.Indent(&pretty, res.Outputs, "", "  ") != nil {
			pretty.Reset()
			pretty.Write(res.Outputs)
		}
		fmt.Fprintln(out, pretty.String())
	}
	if st.Phase != tasks.PhaseSucceeded {
		return &client.RunError{Run: st}
	}
	return nil
}

func (c *cli) getCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show a run: phase, queue position, attempts, outputs",
		Args:  args(1, "the run's name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			st, err := cl.Get(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			res := result{RunStatus: st, Outputs: json.RawMessage("null")}
			if st.Phase == tasks.PhaseSucceeded {
				rio, err := cl.IO(cmd.Context(), st.Name)
				if err != nil {
					return err
				}
				res.Outputs = rio.Outputs
			}
			if c.json() {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			outputs := ""
			if st.Phase == tasks.PhaseSucceeded {
				outputs = string(res.Outputs)
			}
			return fields(cmd.OutOrStdout(),
				"NAME", st.Name, "TASK", st.Task, "PHASE", string(st.Phase),
				"WAITING", waiting(st), "ATTEMPT", strconv.Itoa(st.Attempt), "NODE", st.Node,
				"DEVICES", strings.Join(st.Devices, ","), "CREATED", when(&st.CreatedAt),
				"STARTED", when(st.StartedAt), "FINISHED", when(st.FinishedAt), "PROGRESS", progressText(st),
				"ERROR", st.Error, "OUTPUTS", outputs)
		},
	}
}

func (c *cli) runsCmd() *cobra.Command {
	var (
		opts         client.ListOptions
		phases       []string
		limit        int
		since, until string
	)
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List your runs, newest first",
		Example: `  taskgate runs --task demo/development/echo --phase failed,aborted
  taskgate runs --all --limit 0 -o json   # every caller's runs (admin group)
  taskgate runs --since 1h                  # created in the last hour
  taskgate runs --since 2026-12-01 --until 2026-12-02T12:00:00Z`,
		Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return usagef("--limit must be 0 (no limit) or more")
			}
			for _, p := range phases {
				if !tasks.Phase(p).Valid() {
					return usagef("--phase %q: want one of %v", p, tasks.Phases)
				}
				opts.Phases = append(opts.Phases, tasks.Phase(p))
			}
			var err error
			now := time.Now()
			if opts.CreatedAfter, err = pointInTime("--since", since, now); err != nil {
				return err
			}
			if opts.CreatedBefore, err = pointInTime("--until", until, now); err != nil {
				return err
			}
			opts.PageSize = 200
			if limit > 0 {
				opts.PageSize = min(limit, 200)
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			runs := []*client.RunStatus{}
			for r, err := range cl.List(cmd.Context(), &opts) {
				if err != nil {
					return err
				}
				runs = append(runs, r)
				if limit > 0 && len(runs) == limit {
					break
				}
			}
			if c.json() {
				return writeJSON(cmd.OutOrStdout(), runs)
			}
			rows := make([][]string, len(runs))
			for i, r := range runs {
				rows[i] = []string{r.Name, r.Task, string(r.Phase), strconv.Itoa(r.Attempt), when(&r.CreatedAt), waitingOrError(r)}
			}
			return table(cmd.OutOrStdout(), []string{"NAME", "TASK", "PHASE", "ATTEMPT", "CREATED", "WAITING/ERROR"}, rows)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Task, "task", "", "only runs of this task (project/domain/name)")
	f.StringSliceVar(&phases, "phase", nil, "only runs in these phases (repeat or comma-separate)")
	f.IntVar(&limit, "limit", 20, "show at most this many runs; 0 shows all")
	f.BoolVar(&opts.All, "all", false, "every caller's runs (admin group only)")
	f.StringVar(&since, "since", "", "only runs created at or after this: a duration before now (90m, 2h) or a time (RFC 3339, or a date)")
	f.StringVar(&until, "until", "", "only runs created before this: a duration before now or a time, as --since")
	return cmd
}

// pointInTime reads a --since or --until value: a duration before now
// (time.ParseDuration: "90m", "2h30m"), a time in RFC 3339, or a date
// (midnight UTC); empty is the zero time (no bound).
func pointInTime(flag, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, usagef("%s %q: a duration before now is positive", flag, v)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usagef("%s %q: want a duration (90m, 2h) or a time (2026-12-01T15:04:05Z, 2026-12-01)", flag, v)
}

func waitingOrError(r *client.RunStatus) string {
	if r.Error != "" {
		return r.Error
	}
	return waiting(r)
}

func (c *cli) abortCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "abort NAME",
		Short: "Abort a run: a queued one ends at once, a running one is cancelled",
		Args:  args(1, "the run's name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			if err := cl.Abort(cmd.Context(), a[0], reason); err != nil {
				var apiErr *client.Error
				if errors.As(err, &apiErr) && apiErr.Status == 409 {
					return fmt.Errorf("run %s already finished: %w", a[0], err)
				}
				return err
			}
			if c.json() {
				return writeJSON(cmd.OutOrStdout(), map[string]string{"name": a[0], "status": "abort_requested", "reason": reason})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "abort requested for %s\n", a[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the run is aborted; kept with it")
	return cmd
}
