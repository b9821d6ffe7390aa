package client_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestClientDoesNotLinkTheServer: a program that calls taskgate imports the
// client, its task definitions (package tasks) and nothing of the server
// (environments, dispatch, stores, huma, chi, SQLite).
func TestClientDoesNotLinkTheServer(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the dependencies with")
	}
	out, err := exec.CommandContext(t.Context(), goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "github.com/taskgate/taskgate/client\n")
	allowed := map[string]bool{
		"github.com/taskgate/taskgate/client":              true,
		"github.com/taskgate/taskgate/tasks":               true,
		"github.com/taskgate/taskgate/middleware/identity": true,
		// The one DNS-label check behind tasks.ValidName: standard library only.
		"github.com/taskgate/taskgate/internal/dnslabel": true,
	}
	for dep := range strings.FieldsSeq(string(out)) {
		if strings.HasPrefix(dep, "github.com/taskgate/taskgate") {
			require.True(t, allowed[dep], "the client imports %s", dep)
			continue
		}
		for _, heavy := range []string{"huma", "go-chi", "sqlite", "pgx"} {
			require.NotContains(t, dep, heavy)
		}
	}
}
