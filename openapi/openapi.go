package openapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
)

// Files maps each committed file to the path the App serves it at.
var Files = map[string]string{
	"openapi.yaml":     "/openapi.yaml",
	"openapi-3.0.yaml": "/openapi-3.0.yaml",
}

// Generate builds the quickstart App over a throwaway SQLite folder and
// returns the documents it serves, keyed by file name.
func Generate(ctx context.Context) (map[string][]byte, error) {
	docs, err := Documents(ctx, demo.Webhook())
	if err != nil {
		return nil, err
	}
	return docs[0], nil
}

// Documents builds an App of the quickstart's tasks that serves envs, over
// a throwaway SQLite folder, and returns the documents each environment
// serves (under its PathPrefix), keyed by file name.
func Documents(ctx context.Context, envs ...environments.Environment) ([]map[string][]byte, error) {
	dir, err := os.MkdirTemp("", "taskgate-openapi-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cfg, err := framework.ParseEnv(func(k string) string {
		if k == "TASKGATE_DATA_DIR" {
			return dir
		}
		if k == "TASKGATE_AUTH_TOKENS" {
			return "docs-token-0123456789=docs"
		}
		return ""
	})
	if err != nil {
		return nil, err
	}
	cfg.NodeGPUs = "T4:1" // no nvidia-smi probing while generating
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := framework.FromEnv(ctx, cfg, logger, demo.Registry(), envs...)
	if err != nil {
		return nil, err
	}
	defer svc.Store.Close()
	svc.App.Title = "taskgate quickstart"
	svc.App.Version = "1.0.0"
	h, err := svc.App.Handler()
	if err != nil {
		return nil, err
	}
	var all []map[string][]byte
	for _, env := range envs {
		out := map[string][]byte{}
		for file, path := range Files {
			path = env.Settings().PathPrefix + path
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			if rec.Code != http.StatusOK {
				return nil, fmt.Errorf("GET %s: %d", path, rec.Code)
			}
			out[file] = rec.Body.Bytes()
		}
		all = append(all, out)
	}
	return all, nil
}
