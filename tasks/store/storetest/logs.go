package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks/store"
)

func testLogs(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := newRun(nil)
	create(t, s, r)
	lines := []store.LogLine{
		{Run: r.Name, Attempt: 1, At: t0, Level: "INFO", Message: "one", Attrs: json.RawMessage(`{"k":1}`)},
		{Run: r.Name, Attempt: 1, At: t0.Add(time.Millisecond), Level: "WARN", Message: "two"},
	}
	require.NoError(t, s.AppendLogs(ctx, lines))
	got, err := s.Logs(ctx, r.Name)
	require.NoError(t, err)
	require.Equal(t, lines, got)
}
