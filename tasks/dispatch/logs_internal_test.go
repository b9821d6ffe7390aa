package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/taskgate/taskgate/tasks/store"
)

// TestLogBufferIsBounded: lines logged while the store does not keep up
// stop being held past maxBufferedLogLines; the rest are counted.
func TestLogBufferIsBounded(t *testing.T) {
	t.Parallel()
	w := newLogWriter(nil, slog.New(slog.DiscardHandler))
	for range maxBufferedLogLines + 5 {
		w.add(store.LogLine{Run: "r", Message: "x"})
	}
	if len(w.buf) != maxBufferedLogLines || w.dropped != 5 {
		t.Fatalf("%d lines held and %d dropped, want %d and 5", len(w.buf), w.dropped, maxBufferedLogLines)
	}
}

// refusingLogs is a store whose AppendLogs fails with err while it is set.
type refusingLogs struct {
	store.Store
	err  error
	kept []string
}

func (s *refusingLogs) AppendLogs(_ context.Context, lines []store.LogLine) error {
	if s.err != nil {
		return s.err
	}
	for _, l := range lines {
		s.kept = append(s.kept, l.Message)
	}
	return nil
}

// TestLogLinesWaitForAnUnavailableStore: lines the store could not take
// because it is unavailable (a full disk) are written, in order, by a
// later flush; lines it refused for another reason are dropped.
func TestLogLinesWaitForAnUnavailableStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := &refusingLogs{err: fmt.Errorf("commit: %w: database or disk is full", store.ErrDiskFull)}
	w := newLogWriter(st, slog.New(slog.DiscardHandler))
	w.add(store.LogLine{Run: "r", Message: "a"})
	w.flush(ctx)
	w.add(store.LogLine{Run: "r", Message: "b"})
	st.err = nil
	w.flush(ctx)
	if fmt.Sprint(st.kept) != "[a b]" {
		t.Fatalf("stored %v, want [a b]", st.kept)
	}
	st.err = errors.New("constraint failed")
	w.add(store.LogLine{Run: "r", Message: "c"})
	w.flush(ctx)
	if len(w.buf) != 0 {
		t.Fatalf("%d lines held after a refusal that trying again cannot change", len(w.buf))
	}
}
