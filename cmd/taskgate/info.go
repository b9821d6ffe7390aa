package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/taskgate/taskgate/client"
	"github.com/taskgate/taskgate/tasks"
)

func (c *cli) tasksCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "tasks",
		Short: "List the tasks you may run",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			ts, err := cl.Tasks(cmd.Context())
			if err != nil {
				return err
			}
			if c.json() {
				return writeJSON(cmd.OutOrStdout(), ts)
			}
			rows := make([][]string, len(ts))
			for i, t := range ts {
				rows[i] = []string{t.ID(), t.Version, t.Description}
			}
			return table(cmd.OutOrStdout(), []string{"TASK", "VERSION", "DESCRIPTION"}, rows)
		},
	}
}

func (c *cli) nodesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "nodes",
		Short: "List the nodes and their free devices (admin group)",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			nodes, err := cl.Nodes(cmd.Context())
			if err != nil {
				return err
			}
			if c.json() {
				return writeJSON(cmd.OutOrStdout(), nodes)
			}
			rows := make([][]string, len(nodes))
			for i, n := range nodes {
				health := "healthy"
				if !n.Healthy {
					health = "unhealthy"
				}
				rows[i] = []string{
					n.ID, health,
					fmt.Sprintf("%s/%s", milliCPU(n.FreeMilliCPU), milliCPU(n.MilliCPU)),
					fmt.Sprintf("%s/%s", humanize.IBytes(uint64(max(n.FreeMemoryBytes, 0))), humanize.IBytes(uint64(max(n.MemoryBytes, 0)))),
					freeDevices(n), strconv.Itoa(len(n.Runs)),
				}
			}
			return table(cmd.OutOrStdout(), []string{"NODE", "STATE", "FREE CPU", "FREE MEMORY", "FREE DEVICES", "RUNS"}, rows)
		},
	}
}

func milliCPU(m int64) string { return strconv.FormatFloat(float64(m)/1000, 'f', -1, 64) }

// freeDevices is "A100-40GB:1 H100:0", by kind in name order.
func freeDevices(n client.Node) string {
	kinds := map[string]int{}
	for _, d := range n.Devices {
		kind := d.Type
		if d.MIG != "" {
			kind += " MIG " + d.MIG
		}
		kinds[kind] += 0
	}
	for k, v := range n.Free {
		kinds[k] = v
	}
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s:%d", k, kinds[k])
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func (c *cli) queueCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "queue",
		Short: "Summarize the queue: runs by phase, why runs wait (admin group)",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			q, err := cl.Queue(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if c.json() {
				return writeJSON(out, q)
			}
			var rows [][]string
			for _, p := range tasks.Phases {
				if !p.Terminal() {
					rows = append(rows, []string{string(p), strconv.Itoa(q.Runs[p])})
				}
			}
			if err := table(out, []string{"PHASE", "RUNS"}, rows); err != nil {
				return err
			}
			if q.Scheduler == nil {
				fmt.Fprintln(out, "\n(this server does not hold the scheduler lease: no waiting reasons)")
				return nil
			}
			if len(q.Scheduler.Reasons) > 0 {
				rows = rows[:0]
				for _, r := range q.Scheduler.Reasons {
					rows = append(rows, []string{strconv.Itoa(r.Runs), r.Reason})
				}
				fmt.Fprintln(out)
				if err := table(out, []string{"WAITING", "REASON"}, rows); err != nil {
					return err
				}
			}
			if len(q.Scheduler.Projects) > 0 {
				rows = rows[:0]
				for _, p := range q.Scheduler.Projects {
					quota := "-"
					if p.GPUQuota > 0 {
						quota = strconv.Itoa(p.GPUQuota)
					}
					rows = append(rows, []string{p.Project, strconv.Itoa(p.Waiting), strconv.Itoa(p.Bound), strconv.Itoa(p.GPUsInUse), quota})
				}
				fmt.Fprintln(out)
				return table(out, []string{"PROJECT", "WAITING", "PLACED", "GPUS", "GPU QUOTA"}, rows)
			}
			return nil
		},
	}
}

func (c *cli) loginCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "login",
		Short: "Check a token and store it for the server",
		Long: `Check a token against the server (GET /me) and store it, with the server's
URL, in the user's configuration folder (taskgate/credentials.json, mode
0600), where later commands find it when TASKGATE_TOKEN is unset.

The token is --token, else TASKGATE_TOKEN, else read from stdin (without
echo on a terminal).`,
		Example: `  taskgate login --url https://taskgate.example.com
  echo "$TOKEN" | taskgate login`,
		Args: args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			token := c.token
			if token == "" {
				token = c.env.getenv("TASKGATE_TOKEN")
			}
			if token == "" {
				t, err := c.readToken(cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				token = t
			}
			c.token = token
			cl, err := c.client()
			if err != nil {
				return err
			}
			me, err := cl.Me(cmd.Context())
			if err != nil {
				return fmt.Errorf("checking the token with %s: %w", cl.BaseURL(), err)
			}
			saved, err := c.loadCredentials()
			if err != nil {
				return err
			}
			saved.URL = cl.BaseURL()
			saved.Tokens[saved.URL] = token
			path, err := c.saveCredentials(saved)
			if err != nil {
				return fmt.Errorf("storing the token: %w", err)
			}
			if c.json() {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"url": saved.URL, "identity": me, "credentials": path})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Logged in to %s as %s (token stored in %s)\n", saved.URL, me.Name, path)
			return nil
		},
	}
}

// readToken reads a token from stdin: prompted and unechoed on a
// terminal, the first line otherwise.
func (c *cli) readToken(prompt io.Writer) (string, error) {
	var line string
	if c.env.terminal(c.env.stdin) && c.env.readSecret != nil {
		fmt.Fprint(prompt, "Token: ")
		b, err := c.env.readSecret(c.env.stdin)
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("reading the token: %w", err)
		}
		line = string(b)
	} else {
		s := bufio.NewScanner(io.LimitReader(c.env.stdin, 64<<10))
		s.Buffer(make([]byte, 0, 4096), 64<<10)
		if s.Scan() {
			line = s.Text()
		}
		if err := s.Err(); err != nil {
			return "", fmt.Errorf("reading the token: %w", err)
		}
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return "", usageError{errors.New("no token: give --token, set TASKGATE_TOKEN or write it on stdin")}
	}
	return line, nil
}

func (c *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this program",
		Args:  args(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := map[string]string{"version": client.Version(), "go": runtime.Version()}
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					switch s.Key {
					case "vcs.revision":
						v["commit"] = s.Value
					case "vcs.time":
						v["built"] = s.Value
					case "vcs.modified":
						v["modified"] = s.Value
					}
				}
			}
			if c.json() {
				return writeJSON(cmd.OutOrStdout(), v)
			}
			line := "taskgate " + v["version"] + " (" + v["go"]
			if v["commit"] != "" {
				line += ", commit " + v["commit"]
				if v["modified"] == "true" {
					line += " modified"
				}
			}
			fmt.Fprintln(cmd.OutOrStdout(), line+")")
			return nil
		},
	}
}
