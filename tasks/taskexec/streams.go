package taskexec

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/taskgate/taskgate/tasks"
)

// maxLineBytes bounds one line of output, or of progress, that is kept:
// a program that prints a megabyte without a newline (a progress bar
// redrawn with \r) must not grow a log line without limit.
const maxLineBytes = 16 << 10

// progressPath names the progress pipe in the program: fd 3, the first of
// cmd.ExtraFiles. /dev/fd/N opens the descriptor on Linux and macOS alike,
// so a program writes to it as to any file, or to fd 3 directly.
const progressPath = "/dev/fd/3"

// pipes are the program's stdout, stderr and progress pipe. They are files
// of our own, not exec's: exec's Wait returns only once its pipes close,
// and a child that keeps them open would hold the attempt. With plain
// files Wait watches the process alone, and the readers end when the last
// holder is gone.
type pipes struct {
	stdout, stderr, progress *os.File // our read ends
	child                    []*os.File
	closeOnce                sync.Once
	readers                  sync.WaitGroup
}

// newPipes makes the pipes and gives cmd the write ends. progress is nil
// where a process cannot inherit a descriptor past stderr (Windows).
func newPipes(cmd *exec.Cmd) (*pipes, error) {
	n := 2
	if progressSupported {
		n = 3
	}
	p := &pipes{}
	reads := make([]*os.File, 3)
	for i := range n {
		r, w, err := os.Pipe()
		if err != nil {
			p.closeChildEnds()
			p.stdout, p.stderr = reads[0], reads[1]
			p.closeOurEnds()
			return nil, fmt.Errorf("pipe: %w", err)
		}
		reads[i] = r
		p.child = append(p.child, w)
	}
	p.stdout, p.stderr, p.progress = reads[0], reads[1], reads[2]
	cmd.Stdout, cmd.Stderr = p.child[0], p.child[1]
	if p.progress != nil {
		cmd.ExtraFiles = []*os.File{p.child[2]}
	}
	return p, nil
}

// closeChildEnds closes our copies of the write ends once the program has
// its own: ours would keep the readers from ever seeing the end.
func (p *pipes) closeChildEnds() {
	for _, f := range p.child {
		f.Close()
	}
}

// closeOurEnds ends the readers; safe to call more than once and while
// they read.
func (p *pipes) closeOurEnds() {
	p.closeOnce.Do(func() {
		for _, f := range []*os.File{p.stdout, p.stderr, p.progress} {
			if f != nil {
				f.Close()
			}
		}
	})
}

// read starts the readers of the started program's pipes: its output to
// the run's logs, its progress to tasks.Progress. The tail it returns
// holds the last lines of stderr once finish returned.
func (p *pipes) read(ctx context.Context, log *slog.Logger) *tail {
	t := &tail{}
	p.readers.Go(func() { logLines(log, p.stdout, "stdout", nil) })
	p.readers.Go(func() { logLines(log, p.stderr, "stderr", t) })
	if p.progress != nil {
		p.readers.Go(func() { readProgress(ctx, log, p.progress) })
	}
	return t
}

// finish waits for the readers once the program's group is gone. A
// process that left the group (setsid) is not killed with it and may hold
// the pipes as long as it lives: they are closed a second after.
func (p *pipes) finish() {
	cut := time.AfterFunc(time.Second, p.closeOurEnds)
	p.readers.Wait()
	cut.Stop()
	p.closeOurEnds()
}

// readLines calls emit with each non-empty line of r, without its end,
// until r ends or fails. A line longer than maxLineBytes is cut to that
// length; cut is then the number of bytes dropped.
func readLines(r io.Reader, emit func(line []byte, cut int)) {
	br := bufio.NewReaderSize(r, maxLineBytes)
	for {
		b, err := br.ReadSlice('\n')
		line, cut := b, 0
		if errors.Is(err, bufio.ErrBufferFull) {
			line = bytes.Clone(b)
			for errors.Is(err, bufio.ErrBufferFull) {
				b, err = br.ReadSlice('\n')
				cut += len(bytes.TrimRight(b, "\r\n"))
			}
		}
		if line = bytes.TrimRight(line, "\r\n"); len(line) > 0 || cut > 0 {
			emit(line, cut)
		}
		if err != nil {
			return
		}
	}
}

// logLines logs each line of r to the run's logs with stream=name, and
// keeps the last ones in tail when it is not nil.
func logLines(log *slog.Logger, r io.Reader, name string, tail *tail) {
	readLines(r, func(b []byte, cut int) {
		line := strings.ToValidUTF8(string(b), "\uFFFD")
		if cut > 0 {
			line += fmt.Sprintf(" …[line cut: %d more bytes]", cut)
		}
		log.Info(line, slog.String("stream", name))
		if tail != nil {
			tail.add(line)
		}
	})
}

// Bounds of the stderr lines an ExitError quotes: enough for the end of a
// Python traceback, short enough for a run's error.
const (
	tailLines     = 10
	tailLineBytes = 512
)

// tail holds the last lines of a stream; one goroutine adds, and lines is
// read once it has finished.
type tail struct{ buf []string }

func (t *tail) add(line string) {
	if len(line) > tailLineBytes {
		line = strings.ToValidUTF8(line[:tailLineBytes], "") + "…"
	}
	if len(t.buf) == tailLines {
		t.buf = append(t.buf[:0], t.buf[1:]...)
	}
	t.buf = append(t.buf, line)
}

func (t *tail) lines() []string { return append([]string(nil), t.buf...) }

// readProgress feeds each line of r to tasks.Progress. A line that is not
// a progress report is logged and ignored: progress is advice, and a
// program's bad line must not fail its run.
func readProgress(ctx context.Context, log *slog.Logger, r io.Reader) {
	readLines(r, func(b []byte, cut int) {
		if cut > 0 {
			log.Warn("progress line ignored: longer than 16 KiB", slog.Int("bytes", len(b)+cut))
			return
		}
		p, err := parseProgress(b)
		if err != nil {
			log.Warn("progress line ignored", slog.String("error", err.Error()), slog.String("line", strings.ToValidUTF8(string(b[:min(len(b), 200)]), "\uFFFD")))
			return
		}
		tasks.Progress(ctx, p.Done, p.Total, p.Message)
	})
}

// parseProgress reads one line of the progress protocol:
// {"done":3,"total":10,"message":"epoch 3"}, total and message optional.
// Unknown fields are ignored, so that programs may send what a later
// taskgate reads.
func parseProgress(line []byte) (tasks.ProgressReport, error) {
	var p struct {
		Done    *float64 `json:"done"`
		Total   float64  `json:"total"`
		Message string   `json:"message"`
	}
	if err := json.Unmarshal(line, &p); err != nil {
		return tasks.ProgressReport{}, fmt.Errorf("not a JSON progress object: %w", err)
	}
	switch {
	case p.Done == nil:
		return tasks.ProgressReport{}, errors.New(`no "done"`)
	case *p.Done < 0 || p.Total < 0:
		return tasks.ProgressReport{}, errors.New(`"done" and "total" may not be negative`)
	}
	return tasks.ProgressReport{Done: *p.Done, Total: p.Total, Message: p.Message}, nil
}
