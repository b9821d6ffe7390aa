package client_test

import (
	"context"
	"io"
	"log"
	"log/slog"
	"net"
	"os"

	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
)

// quickstart serves the quickstart's service (demo tasks, SQLite in a
// temporary folder) on loopback for an example, and returns its URL, a
// token and the function that stops it.
func quickstart() (base, token string, stop func()) {
	dir, err := os.MkdirTemp("", "taskgate-example-")
	if err != nil {
		log.Fatal(err)
	}
	token = "example-token-0123456789"
	env := map[string]string{"TASKGATE_DATA_DIR": dir, "TASKGATE_AUTH_TOKENS": token + "=example", "TASKGATE_NODE_GPUS": "A100:1"}
	cfg, err := framework.ParseEnv(func(k string) string { return env[k] })
	if err != nil {
		log.Fatal(err)
	}
	svc, err := framework.FromEnv(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), demo.Registry(), demo.Webhook())
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.App.Serve(ctx, ln) }()
	return "http://" + ln.Addr().String(), token, func() {
		cancel()
		if err := <-done; err != nil {
			log.Fatal(err)
		}
		os.RemoveAll(dir)
	}
}
