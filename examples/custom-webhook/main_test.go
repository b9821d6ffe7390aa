package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/framework/frameworktest"
)

const (
	alice = "alice-token-0123456789abcdef"
	bob   = "bob-token-0123456789abcdef00"
)

// TestCustomWebhook walks the tutorial: health without credentials, a run
// started as alice through the custom app, followed by alice in the
// webhook environment until it succeeds, and hidden from bob.
func TestCustomWebhook(t *testing.T) {
	cfg, err := framework.ParseEnv(func(k string) string {
		switch k {
		case "TASKGATE_DATA_DIR":
			return t.TempDir()
		case "TASKGATE_AUTH_TOKENS":
			return alice + "=alice," + bob + "=bob"
		case "TASKGATE_NODE_GPUS":
			return "A100:1" // declared, so no nvidia-smi probe
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := newService(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	base := frameworktest.Serve(t, svc.App)

	call := func(method, path, token, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if code, body := call("GET", "/health", "", ""); code != http.StatusOK || !strings.Contains(body, `"ok"`) {
		t.Fatalf("GET /health: %d %s", code, body)
	}
	if code, _ := call("POST", "/run-my-task", "", `{"message":"hi"}`); code != http.StatusUnauthorized {
		t.Fatalf("POST /run-my-task without credentials: %d", code)
	}
	if code, body := call("POST", "/run-my-task", alice, `{}`); code != http.StatusUnprocessableEntity {
		t.Fatalf("POST /run-my-task without message: %d %s", code, body)
	}
	code, body := call("POST", "/run-my-task", alice, `{"message":"hi"}`)
	if code != http.StatusOK {
		t.Fatalf("POST /run-my-task: %d %s", code, body)
	}
	var started struct {
		RunID string `json:"run_id"`
		URL   string `json:"url"`
	}
	if err := json.Unmarshal([]byte(body), &started); err != nil || started.RunID == "" {
		t.Fatalf("POST /run-my-task answered %s (%v)", body, err)
	}

	if code, _ := call("GET", started.URL, bob, ""); code != http.StatusNotFound {
		t.Errorf("bob reads alice's run: %d, want 404", code)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := call("GET", started.URL, alice, "")
		if code != http.StatusOK {
			t.Fatalf("alice reads her run: %d %s", code, body)
		}
		if strings.Contains(body, `"phase":"succeeded"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run never succeeded: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, body := call("GET", "/webhook/runs", alice, ""); code != http.StatusOK || !strings.Contains(body, started.RunID) {
		t.Errorf("alice's runs: %d %s", code, body)
	}
	if code, body := call("GET", "/docs", "", ""); code != http.StatusOK {
		t.Errorf("GET /docs: %d %s", code, body)
	}
	if code, body := call("GET", "/openapi.json", "", ""); code != http.StatusOK || !strings.Contains(body, `"/run-my-task"`) {
		t.Errorf("openapi.json of the custom app: %d", code)
	}
}
