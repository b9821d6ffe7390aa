package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/taskgate/taskgate/client"
)

func (c *cli) logsCmd() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print a run's log lines: its logger's and its subprocesses' stdout and stderr",
		Long: "Prints the lines the run's attempts wrote, oldest first: time, stream (log, stdout, stderr), " +
			"level, message and attributes; with -o json one JSON object per line. With -f, keeps printing " +
			"new lines until the run ends.",
		Args: args(1, "the run's name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for line, err := range cl.Logs(cmd.Context(), a[0], &client.LogsOptions{Follow: follow}) {
				if err != nil {
					if cmd.Context().Err() != nil {
						return c.stoppedWaiting(cmd.Context(), a[0], err)
					}
					return err
				}
				c.printLogLine(out, line)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "print new lines as they come, until the run ends")
	return cmd
}

func (c *cli) printLogLine(out io.Writer, l client.LogLine) {
	if c.json() {
		b, _ := json.Marshal(l)
		fmt.Fprintf(out, "%s\n", b)
		return
	}
	text := fmt.Sprintf("%s  %-6s  %-5s  %s", l.Time.Local().Format("15:04:05.000"), l.Stream, l.Level, l.Message)
	if len(l.Attrs) > 0 {
		text += "  " + string(l.Attrs)
	}
	fmt.Fprintln(out, text)
}

// progressText shows a run's progress: "3/10 epoch 3", or "3 items" when
// the total is unknown.
func progressText(st *client.RunStatus) string {
	p := st.Progress
	if p == nil {
		return ""
	}
	s := strconv.FormatFloat(p.Done, 'f', -1, 64)
	if p.Total > 0 {
		s += "/" + strconv.FormatFloat(p.Total, 'f', -1, 64)
	}
	if p.Message != "" {
		s += " " + p.Message
	}
	return s
}
