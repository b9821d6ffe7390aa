package taskexec

import (
	"context"
	"io"
	"os/exec"
	"sync"
	"time"

	"github.com/taskgate/taskgate/tasks"
)

// outputWaitDelay bounds how long Run waits for a subprocess's output
// once it exited: a child it left behind (a daemon) may hold the pipes as
// long as it lives.
const outputWaitDelay = time.Second

// Run runs cmd (typically from Command) like cmd.Run, with its stdout and
// stderr, where they are unset, kept line by line in the run's logs
// (tasks.Logger) as lines of stream stdout and stderr, the way a command
// task's are: a line past 16 KiB is cut to that and says so. A cmd whose
// Stdout or Stderr is set keeps it: cmd.Output and the like are unchanged.
// Outside a run the lines go to slog.Default.
func Run(ctx context.Context, cmd *exec.Cmd) error {
	log := tasks.Logger(ctx)
	var streams []*lineStream
	open := func(name string) io.Writer {
		s := newLineStream(func(r io.Reader) { logLines(log, r, name, nil) })
		streams = append(streams, s)
		return s
	}
	if cmd.Stdout == nil {
		cmd.Stdout = open("stdout")
	}
	if cmd.Stderr == nil {
		cmd.Stderr = open("stderr")
	}
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = outputWaitDelay
	}
	err := cmd.Run()
	for _, s := range streams {
		s.Close()
	}
	return err
}

// lineStream hands what is written to it to a reader of lines (readLines)
// on a goroutine of its own; Close ends the last, unfinished line and
// waits for the reader.
type lineStream struct {
	w    *io.PipeWriter
	done sync.WaitGroup
}

func newLineStream(read func(io.Reader)) *lineStream {
	r, w := io.Pipe()
	s := &lineStream{w: w}
	s.done.Go(func() {
		read(r)
		_, _ = io.Copy(io.Discard, r) // a reader that stopped early must not block writes
	})
	return s
}

func (s *lineStream) Write(p []byte) (int, error) { return s.w.Write(p) }

func (s *lineStream) Close() {
	_ = s.w.Close()
	s.done.Wait()
}
