package openapi_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/openapi"
)

// TestCommittedDocumentsAreCurrent fails when the App's documents changed
// without `make generate`.
func TestCommittedDocumentsAreCurrent(t *testing.T) {
	docs, err := openapi.Generate(context.Background())
	require.NoError(t, err)
	for name, want := range docs {
		got, err := os.ReadFile(name)
		require.NoError(t, err, "missing %s: run make generate", name)
		require.Equal(t, string(want), string(got), "%s is stale: run make generate", name)
	}
}

// TestDocumentsDescribeEveryOperation checks that each operation of the
// webhook environment has a summary and a description, in both versions.
func TestDocumentsDescribeEveryOperation(t *testing.T) {
	docs, err := openapi.Generate(context.Background())
	require.NoError(t, err)
	for _, name := range []string{"openapi.yaml", "openapi-3.0.yaml"} {
		doc := string(docs[name])
		for _, op := range []string{"health", "me", "list-tasks", "get-task", "run-task", "get-run", "get-run-io",
			"abort-run", "list-runs", "run-events", "run-logs", "list-nodes", "queue-summary"} {
			require.Contains(t, doc, "operationId: "+op, "%s lacks %s", name, op)
		}
		require.Equal(t, strings.Count(doc, "operationId:"), strings.Count(doc, "\n      summary:"), "%s: every operation has a summary", name)
		require.Contains(t, doc, "EchoInput:", "task input schemas are in the document")
		require.Contains(t, doc, "SleepInput:", "task input schemas are in the document")
		// Generated clients get one typed method per task, phases as an
		// enum and the event stream's events.
		require.Contains(t, doc, "operationId: runDemoDevelopmentEcho")
		require.Contains(t, doc, "/run-task/demo/development/echo:")
		require.Contains(t, doc, "DemoDevelopmentEchoRun:")
		require.Contains(t, doc, "- waiting_for_resources")
		require.Contains(t, doc, "title: Server-Sent Events")
		require.NotContains(t, doc, "anyOf", "run-task's body is no union of the tasks' inputs")
	}
	require.Contains(t, string(docs["openapi.yaml"]), "openapi: 3.1.0")
	require.Contains(t, string(docs["openapi-3.0.yaml"]), "openapi: 3.0.3")
}
