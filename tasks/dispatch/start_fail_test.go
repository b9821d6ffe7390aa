package dispatch_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
	"github.com/taskgate/taskgate/tasks/store/sqlite"
)

// Close returns after a Start that failed before launching its loops.
func TestCloseAfterAFailedStart(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d, err := dispatch.New(dispatch.Config{Store: st, Registry: tasks.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Start(cancelled); err == nil {
		t.Skip("Start did not fail on a cancelled context; nothing to check")
	}
	done := make(chan error, 1)
	go func() {
		ctx, c := context.WithTimeout(context.Background(), time.Second)
		defer c()
		done <- d.Close(ctx)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung after a failed Start")
	}
}
