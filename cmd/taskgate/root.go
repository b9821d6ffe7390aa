package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/taskgate/taskgate/client"
)

// Exit codes; see the package doc.
const (
	exitOK          = 0
	exitRunFailed   = 1
	exitUsage       = 2
	exitAPI         = 3
	exitInterrupted = 130
)

// defaultURL is the quickstart's address (`make run`).
const defaultURL = "http://127.0.0.1:8080"

// env is the world the command sees: main gives it the process's, tests
// their own.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	configDir      func() (string, error)
	// terminal reports whether a stream is a terminal: the status line is
	// drawn only on one, and login prompts only on one.
	terminal func(stream any) bool
	// readSecret reads a line from a terminal without echoing it.
	readSecret func(stream any) ([]byte, error)
}

// cli is one invocation: its environment and its global flags.
type cli struct {
	env    *env
	url    string
	token  string
	output string
	// ran is set once a command's own code starts: an error before it
	// came from cobra's parsing of the command line.
	ran bool
}

// usageError is a command line that does not make sense (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// execute runs the command line args and returns the exit code.
func execute(ctx context.Context, args []string, e *env) int {
	c := &cli{env: e}
	root := c.root()
	root.SetArgs(args)
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	code := exitAPI
	var runErr *client.RunError
	var usage usageError
	switch {
	case errors.As(err, &runErr):
		code = exitRunFailed
	case errors.As(err, &usage) || !c.ran:
		code = exitUsage
	case ctx.Err() != nil:
		code = exitInterrupted
	}
	printError(e.stderr, err)
	if code == exitUsage {
		fmt.Fprintf(e.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

// printError writes err for a person: an API error with each bad field on
// a line of its own, and the request id of a server error.
func printError(w io.Writer, err error) {
	var apiErr *client.Error
	if !errors.As(err, &apiErr) {
		fmt.Fprintf(w, "taskgate: %v\n", err)
		return
	}
	msg := fmt.Sprintf("%d %s", apiErr.Status, apiErr.Title)
	if apiErr.Detail != "" {
		msg += ": " + apiErr.Detail
	}
	fmt.Fprintf(w, "taskgate: %s\n", msg)
	for _, f := range apiErr.Errors {
		loc := f.Location
		if loc == "" {
			loc = "request"
		}
		fmt.Fprintf(w, "  %s: %s\n", loc, f.Message)
	}
	if apiErr.Status >= 500 && apiErr.RequestID != "" {
		fmt.Fprintf(w, "  request id: %s\n", apiErr.RequestID)
	}
}

func (c *cli) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "taskgate",
		Short: "Run and follow tasks on a taskgate service",
		Long: `taskgate runs tasks on a taskgate service and follows them.

The server is --url, else TASKGATE_URL, else the server of the last
'taskgate login', else ` + defaultURL + `. The token is --token, else
TASKGATE_TOKEN, else the one 'taskgate login' stored for that server.

Exit codes: 0 success; 1 the run failed, was aborted or timed out;
2 usage error; 3 the API refused the request or could not be reached;
130 interrupted.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			c.ran = true
			if c.output != "table" && c.output != "json" {
				return usagef("--output %q: want table or json", c.output)
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	flags := root.PersistentFlags()
	flags.StringVar(&c.url, "url", "", "server URL (default $TASKGATE_URL, else "+defaultURL+")")
	flags.StringVar(&c.token, "token", "", "bearer token (default $TASKGATE_TOKEN, else the one login stored)")
	flags.StringVarP(&c.output, "output", "o", "table", "output format: table or json")
	root.AddCommand(c.runCmd(), c.getCmd(), c.runsCmd(), c.abortCmd(), c.logsCmd(),
		c.tasksCmd(), c.nodesCmd(), c.queueCmd(), c.loginCmd(), c.versionCmd())
	return root
}

// args checks the number of positional arguments as a usage error.
func args(n int, names string) cobra.PositionalArgs {
	return func(_ *cobra.Command, a []string) error {
		if len(a) != n {
			return usagef("want %s, got %d argument(s)", names, len(a))
		}
		return nil
	}
}

// serverURL is the server to call: --url, TASKGATE_URL, the last login's
// server, the default.
func (c *cli) serverURL() string {
	for _, u := range []string{c.url, c.env.getenv("TASKGATE_URL")} {
		if u != "" {
			return strings.TrimSuffix(u, "/")
		}
	}
	if saved, err := c.loadCredentials(); err == nil && saved.URL != "" {
		return saved.URL
	}
	return defaultURL
}

// client is a client of the server with the token: --token,
// TASKGATE_TOKEN, the one login stored for the server.
func (c *cli) client() (*client.Client, error) {
	base := c.serverURL()
	token := c.token
	if token == "" {
		token = c.env.getenv("TASKGATE_TOKEN")
	}
	if token == "" {
		if saved, err := c.loadCredentials(); err == nil {
			token = saved.Tokens[base]
		}
	}
	opts := &client.Options{UserAgent: "taskgate-cli/" + client.Version()}
	if token != "" {
		opts.Credentials = client.BearerToken(token)
	}
	cl, err := client.New(base, opts)
	if err != nil {
		return nil, usageError{err}
	}
	return cl, nil
}

func (c *cli) json() bool { return c.output == "json" }
