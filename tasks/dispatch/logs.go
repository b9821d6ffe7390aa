package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/taskgate/taskgate/internal/backoff"
	"github.com/taskgate/taskgate/tasks/store"
)

// logFlushInterval bounds how long a task's log line stays in memory.
const logFlushInterval = 200 * time.Millisecond

// maxBufferedLogLines bounds the lines held between two writes: a task
// that logs in a tight loop while the store is slow must not grow the
// process without limit. Lines past it are dropped and counted.
const maxBufferedLogLines = 100_000

// logWriteTimeout bounds one write of log lines: the transition writer
// flushes before it records outcomes, and must not wait on a hung write.
const logWriteTimeout = 10 * time.Second

// logAppender is what the log writer needs of the store; store.Store
// satisfies it.
type logAppender interface {
	AppendLogs(ctx context.Context, lines []store.LogLine) error
}

// logWriter buffers the lines tasks log and stores them in batches.
type logWriter struct {
	st      logAppender
	log     *slog.Logger
	mu      sync.Mutex
	buf     []store.LogLine
	dropped int // lines refused since the last write, buffer full
	flushMu sync.Mutex
	fails   *backoff.Failures
}

func newLogWriter(st logAppender, log *slog.Logger) *logWriter {
	return &logWriter{st: st, log: log, fails: failures(log, "store task logs")}
}

func (w *logWriter) add(l store.LogLine) {
	w.mu.Lock()
	if len(w.buf) < maxBufferedLogLines {
		w.buf = append(w.buf, l)
	} else {
		w.dropped++
	}
	w.mu.Unlock()
}

// flush stores what is buffered. Lines are best effort: a failed write is
// logged and dropped rather than failing the run, unless the store is
// unavailable (a full disk): then the lines wait in the buffer, within its
// bound, for the next write.
func (w *logWriter) flush(ctx context.Context) {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	lines, dropped := w.buf, w.dropped
	w.buf, w.dropped = nil, 0
	w.mu.Unlock()
	if dropped > 0 {
		w.log.Warn("task log lines dropped: too many waiting to be stored", "lines", dropped)
	}
	if len(lines) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, logWriteTimeout)
	defer cancel()
	err := w.st.AppendLogs(ctx, lines)
	w.fails.Report(ctx, err, slog.Int("lines", len(lines)))
	if errors.Is(err, store.ErrUnavailable) {
		w.putBack(lines)
	}
}

// putBack returns lines a write could not store to the front of the
// buffer, dropping (and counting) what exceeds its bound.
func (w *logWriter) putBack(lines []store.LogLine) {
	w.mu.Lock()
	defer w.mu.Unlock()
	keep := min(len(lines), maxBufferedLogLines-len(w.buf))
	w.dropped += len(lines) - keep
	w.buf = append(lines[:keep:keep], w.buf...)
}

func (w *logWriter) run(ctx context.Context) {
	t := time.NewTicker(logFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !w.fails.Waiting() {
				w.flush(ctx)
			}
		}
	}
}

// runLogHandler is the slog.Handler behind tasks.Logger(ctx) in a run: it
// keeps lines with the run and attempt.
type runLogHandler struct {
	w       *logWriter
	run     string
	attempt int
	now     func() time.Time
	attrs   []slog.Attr
	group   string
}

func (h *runLogHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *runLogHandler) Handle(_ context.Context, r slog.Record) error {
	attrs := map[string]any{}
	put := func(a slog.Attr) {
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		attrs[key] = a.Value.Resolve().Any()
	}
	for _, a := range h.attrs {
		attrs[a.Key] = a.Value.Resolve().Any()
	}
	r.Attrs(func(a slog.Attr) bool { put(a); return true })
	stream := store.StreamLog
	if s, ok := attrs["stream"].(string); ok && (s == store.StreamStdout || s == store.StreamStderr) {
		// A subprocess's line (taskexec): its stream is the line's own
		// field, not an attribute.
		stream = s
		delete(attrs, "stream")
	}
	var raw json.RawMessage
	if len(attrs) > 0 {
		b, err := json.Marshal(attrs)
		if err != nil {
			b, _ = json.Marshal(map[string]string{"error": "attributes not encodable: " + err.Error()})
		}
		raw = b
	}
	at := r.Time
	if at.IsZero() {
		at = h.now()
	}
	h.w.add(store.LogLine{Run: h.run, Attempt: h.attempt, At: at, Level: r.Level.String(), Stream: stream, Message: r.Message, Attrs: raw})
	return nil
}

func (h *runLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append([]slog.Attr(nil), h.attrs...)
	for _, a := range as {
		if h.group != "" {
			a.Key = h.group + "." + a.Key
		}
		c.attrs = append(c.attrs, a)
	}
	return &c
}

func (h *runLogHandler) WithGroup(name string) slog.Handler {
	c := *h
	if c.group != "" {
		c.group += "." + name
	} else {
		c.group = name
	}
	return &c
}

// maxLogsPage bounds the lines one LogsAfter call returns.
const maxLogsPage = 1000

// LogsAfter returns at most limit (at most 1000; 0 means 1000) of the
// lines the run's attempts logged with Seq > afterSeq, oldest first: a
// page of GET /run/{name}/logs, or what a follower has not seen yet.
func (d *Dispatcher) LogsAfter(ctx context.Context, name string, afterSeq int64, limit int) ([]LogLine, error) {
	if limit <= 0 || limit > maxLogsPage {
		limit = maxLogsPage
	}
	lines, err := d.st.LogsAfter(ctx, name, afterSeq, limit)
	return lines, mapErr(err)
}
