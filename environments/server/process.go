package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// supervisor runs a server's command on one port and restarts it when it
// exits: the process of an unheld server, or of one replica of a held
// server (held.go), on the replica's devices.
type supervisor struct {
	cfg    *Config
	logger *slog.Logger
	port   int
	addr   string   // host:port the process answers on
	env    []string // the replica's devices, before Config.Env
	// setUp hears whether a process answers on the port.
	setUp func(up bool)
}

// process is one run of the server's command.
type process struct {
	cmd     *exec.Cmd
	started time.Time
	exited  chan struct{} // closed once Wait returned
	err     error         // Wait's result, set before exited closes
}

// launch starts the command in a process group of its own, so that Stop
// reaches the children a shell or a reloader starts.
func (s *supervisor) launch() (*process, error) {
	logger := s.logger
	cmd := exec.Command(s.cfg.Command[0], s.cfg.Command[1:]...)
	cmd.Dir = s.cfg.Dir
	cmd.Env = s.environ()
	// The output goes through pipes of our own, not exec's: exec's Wait
	// returns only once its pipes close, and a child of the server that
	// keeps them open would hide the server's death (until WaitDelay).
	// With plain files Wait watches the process alone; the readers end
	// when the last holder of the pipes is gone, at the latest when the
	// group's leftovers are killed.
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("server %s: %w: %w", s.cfg.Name, ErrStartup, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("server %s: %w: %w", s.cfg.Name, ErrStartup, err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	newProcessGroup(cmd)
	err = cmd.Start()
	// The process has its copies; ours would keep the readers from ever
	// seeing the end.
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("server %s: %w: %w", s.cfg.Name, ErrStartup, err)
	}
	logger.Info("server process started", slog.Int("pid", cmd.Process.Pid), slog.String("command", cmd.Path))
	var readers sync.WaitGroup
	readers.Go(func() { logLines(outR, &lineLogger{logger: logger, stream: "stdout"}) })
	readers.Go(func() { logLines(errR, &lineLogger{logger: logger, stream: "stderr"}) })
	p := &process{cmd: cmd, started: time.Now(), exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
		// A child that left the group (setsid) is not killed with it and
		// may hold the pipes as long as it lives: stop reading them after
		// the grace period, as exec's WaitDelay would.
		cut := time.AfterFunc(s.cfg.StopGracePeriod, func() {
			outR.Close()
			errR.Close()
		})
		readers.Wait()
		cut.Stop()
	}()
	return p, nil
}

// logLines logs what r yields until every writer closed it (or launch
// closed it, see there).
func logLines(r *os.File, l *lineLogger) {
	_, _ = io.Copy(l, r)
	l.flush()
	r.Close()
}

// environ is the process environment: ours without TASKGATE_* variables,
// then PORT, then the devices of a held replica, then Env (a later entry
// wins).
func (s *supervisor) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TASKGATE_") {
			env = append(env, kv)
		}
	}
	env = append(env, "PORT="+strconv.Itoa(s.port))
	env = append(env, s.env...)
	return append(env, s.cfg.Env...)
}

// dial reports whether the server's port accepts a connection.
func (s *supervisor) dial(ctx context.Context) error {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// waitReady polls the port until it answers, the process exits,
// StartupTimeout passes or ctx ends.
func (s *supervisor) waitReady(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartupTimeout)
	defer cancel()
	wait := 10 * time.Millisecond
	for {
		if s.dial(ctx) == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("server %s: %w: the process exited before port %d answered: %w",
				s.cfg.Name, ErrStartup, s.port, p.err)
		case <-ctx.Done():
			return fmt.Errorf("server %s: %w: port %d did not answer within %v: %w",
				s.cfg.Name, ErrStartup, s.port, s.cfg.StartupTimeout, ctx.Err())
		case <-time.After(wait):
			wait = min(2*wait, 250*time.Millisecond)
		}
	}
}

// terminate stops p's process group: SIGTERM, then SIGKILL after the grace
// period or when kill closes. It returns once p exited.
func (s *supervisor) terminate(p *process, kill <-chan struct{}) {
	signalGroup(p.cmd, true)
	t := time.NewTimer(s.cfg.StopGracePeriod)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
	case <-kill:
	}
	signalGroup(p.cmd, false)
	<-p.exited
}

// supervise restarts the server whenever it exits, until ctx ends; then it
// stops the current process.
func (s *supervisor) supervise(ctx context.Context, p *process, done, kill chan struct{}) {
	defer close(done)
	defer s.setUp(false)
	logger := s.logger
	backoff := s.cfg.RestartBackoff
	for {
		select {
		case <-ctx.Done():
			s.setUp(false)
			s.terminate(p, kill)
			return
		case <-p.exited:
		}
		s.setUp(false)
		// Reap what the exited leader left behind in its group.
		signalGroup(p.cmd, false)
		if time.Since(p.started) > s.cfg.MaxRestartBackoff {
			backoff = s.cfg.RestartBackoff
		}
		logger.Warn("server process exited; restarting",
			slog.String("status", exitStatus(p.err)), slog.Duration("backoff", backoff))
		for {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, s.cfg.MaxRestartBackoff)
			np, err := s.launch()
			if err != nil {
				logger.Error("server restart failed", slog.String("error", err.Error()))
				continue
			}
			if err := s.waitReady(ctx, np); err != nil {
				s.terminate(np, kill)
				if ctx.Err() != nil {
					return
				}
				logger.Error("server restart failed", slog.String("error", err.Error()))
				continue
			}
			p = np
			s.setUp(true)
			logger.Info("server process answers again", slog.Int("pid", p.cmd.Process.Pid))
			break
		}
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// lineLogger logs what a process writes, one record per line. A line
// longer than maxLogLine is logged in pieces, so a process that never
// writes a newline cannot make it buffer without bound.
type lineLogger struct {
	logger *slog.Logger
	stream string
	buf    []byte
}

const maxLogLine = 16 << 10

func (l *lineLogger) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxLogLine - len(l.buf)
			if len(p) < room {
				l.buf = append(l.buf, p...)
				break
			}
			l.buf = append(l.buf, p[:room]...)
			p = p[room:]
			l.flush()
			continue
		}
		l.buf = append(l.buf, p[:i]...)
		p = p[i+1:]
		l.flush()
	}
	return n, nil
}

// flush logs the buffered line, if any. Called by the stream's reader
// only (logLines).
func (l *lineLogger) flush() {
	line := strings.TrimRight(string(l.buf), "\r")
	l.buf = l.buf[:0]
	if line == "" {
		return
	}
	l.logger.Info(line, slog.String("stream", l.stream))
}
