package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
)

func main() {
	role := flag.String("role", "", "all, api or agent (overrides TASKGATE_ROLE)")
	flag.Parse()
	cfg, err := framework.LoadEnv()
	// TASKGATE_LOG_FORMAT and TASKGATE_LOG_LEVEL, or text at info when
	// the configuration is wrong.
	logger := cfg.NewLogger(os.Stderr)
	if err == nil {
		err = run(context.Background(), logger, cfg, *role)
	}
	if err != nil {
		logger.Error("quickstart stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, logger *slog.Logger, cfg framework.EnvConfig, role string) error {
	if role != "" {
		cfg.Role = role
	}
	svc, err := framework.FromEnv(ctx, cfg, logger, demo.Registry(), demo.Webhook())
	if err != nil {
		return err
	}
	svc.App.Title = "taskgate quickstart"
	if svc.DevToken != "" {
		// Printed on stdout for the developer at the terminal; never logged.
		fmt.Printf(`
taskgate quickstart on http://%[1]s  (docs: http://%[1]s/docs)
No TASKGATE_AUTH_TOKENS set: a development token was generated for subject "dev".

  Console: %[3]s/console
  (sign in at %[3]s/auth/login with the token below)

  export TOKEN=%[2]s
  curl -s -X POST http://%[1]s/run-task/demo/development/echo \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"message":"hi"}'

  # or with the CLI (go install ./cmd/taskgate to call it taskgate):
  export TASKGATE_URL=http://%[1]s TASKGATE_TOKEN=$TOKEN
  go run ./cmd/taskgate run demo/development/echo -d '{"message":"hi"}' --wait

`, cfg.Addr, svc.DevToken, cfg.ExternalURL)
	}
	return svc.App.Run(ctx)
}
