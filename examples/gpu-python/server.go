package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/server"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/middleware/identity"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
)

// newInfer is the inference server at /infer: infer_server.py in dir, one
// replica that holds one GPU of any type (else a 3g.40gb MIG partition of
// an H100 or an A100-80GB) for as long as it runs, four requests at once.
func newInfer(dir, python string) *server.Environment {
	return server.MustNew(server.Config{
		Settings: environments.Settings{
			Name: "infer", Title: "taskgate gpu-python inference", PathPrefix: "/infer",
			Description: "POST /infer/infer {\"size\":4096}: a bf16 model on the server's GPU.",
		},
		Command: []string{python, filepath.Join(dir, "infer_server.py")},
		Resources: environments.Resources{CPU: "1", Memory: "4Gi", GPU: "1",
			GPUFallbacks: []string{"H100:3g.40gb", "A100-80GB:3g.40gb"}},
		Replicas: server.Replicas{Min: 1, Max: 1, MaxInFlight: 4},
		// The first import of torch and CUDA's start take a while.
		StartupTimeout: 3 * time.Minute,
	})
}

// runServerOnce serves the App on a loopback port, waits for the
// inference server's replica to answer (printing why it waits), sends it
// one inference request with inputs, then submits the benchmark to show
// that it waits for the GPU the server holds (on a one-GPU node) until
// the server stops.
func runServerOnce(ctx context.Context, svc *framework.Service, infer *server.Environment, bench *tasks.Definition, inputs string) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	token := svc.DevToken
	if token == "" {
		token = os.Getenv("TOKEN")
	}
	if token == "" {
		return errors.New("credentials are configured: set TOKEN to a token they accept")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	serveCtx, stopServe := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- svc.App.Serve(serveCtx, ln) }()
	defer func() {
		stopServe()
		if err := <-served; err != nil {
			fmt.Println("shutdown:", err)
		}
	}()
	c := &client{base: "http://" + ln.Addr().String(), token: token}

	fmt.Println("waiting for the inference server's replica…")
	health, err := c.waitHealthy(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("server answers: %s\n", health)
	status, body, err := c.do(ctx, http.MethodPost, "/infer/infer", inputs)
	if err != nil {
		return err
	}
	fmt.Printf("POST /infer/infer → %d %s\n", status, body)
	if status != http.StatusOK {
		return fmt.Errorf("inference failed: %d %s", status, body)
	}

	d := svc.Dispatcher
	run, _, err := d.Submit(ctx, dispatch.SubmitRequest{Task: bench, Inputs: json.RawMessage(`{"size":4096,"iterations":20}`),
		Caller: identity.Identity{Subject: "gpu-python"}})
	if err != nil {
		return err
	}
	fmt.Printf("benchmark %s submitted while the server holds its GPU\n", run.Name)
	time.Sleep(3 * time.Second) // a round or two of the scheduler
	if run, err = d.Get(ctx, run.Name); err != nil {
		return err
	}
	_, reason := d.QueuePosition(run.Name)
	fmt.Printf("benchmark: %s %s %v\n", run.Phase, reason, run.Devices)

	fmt.Println("stopping the inference server…")
	if err := infer.Stop(ctx); err != nil {
		return err
	}
	if _, err := c.waitStatus(ctx, "/infer/health", http.StatusServiceUnavailable); err != nil {
		return err
	}
	if run, err = d.Wait(ctx, run.Name); err != nil {
		return err
	}
	fmt.Printf("benchmark %s on %v: %s %s\n", run.Phase, run.Devices, run.Outputs, run.Error)
	return nil
}

// client calls the App as the developer would, with curl.
type client struct{ base, token string }

func (c *client) do(ctx context.Context, method, path, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// waitHealthy polls the server's /health until it answers 200, printing
// each new reason it does not: the proxy's (a replica waiting for its
// GPU, starting) or the server's own (no torch, no CUDA device), which
// ends the wait with an error.
func (c *client) waitHealthy(ctx context.Context) (string, error) {
	said := ""
	for {
		status, body, err := c.do(ctx, http.MethodGet, "/infer/health", "")
		if err != nil {
			return "", err
		}
		if status == http.StatusOK {
			return body, nil
		}
		var why struct{ Detail, Error string }
		_ = json.Unmarshal([]byte(body), &why)
		if why.Error != "" {
			return "", fmt.Errorf("the inference server cannot run: %s", why.Error)
		}
		if why.Detail != said {
			fmt.Printf("  %d: %s\n", status, why.Detail)
			said = why.Detail
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// waitStatus polls path until it answers status.
func (c *client) waitStatus(ctx context.Context, path string, status int) (string, error) {
	for {
		got, body, err := c.do(ctx, http.MethodGet, path, "")
		if err != nil || got == status {
			return body, err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
