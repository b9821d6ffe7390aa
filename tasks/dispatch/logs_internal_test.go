package dispatch

import (
	"log/slog"
	"testing"

	"github.com/taskgate/taskgate/tasks/store"
)

// TestLogBufferIsBounded: lines logged while the store does not keep up
// stop being held past maxBufferedLogLines; the rest are counted.
func TestLogBufferIsBounded(t *testing.T) {
	t.Parallel()
	w := newLogWriter(&Dispatcher{log: slog.New(slog.DiscardHandler)})
	for range maxBufferedLogLines + 5 {
		w.add(store.LogLine{Run: "r", Message: "x"})
	}
	if len(w.buf) != maxBufferedLogLines || w.dropped != 5 {
		t.Fatalf("%d lines held and %d dropped, want %d and 5", len(w.buf), w.dropped, maxBufferedLogLines)
	}
}
