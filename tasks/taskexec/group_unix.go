//go:build unix

package taskexec

import (
	"os/exec"
	"syscall"
	"time"
)

// progressSupported: a process inherits cmd.ExtraFiles as fds 3 and up.
const progressSupported = true

// newProcessGroup makes the program the leader of a process group of its
// own, so that an abort reaches what a shell or a launcher starts.
func newProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends the program's group SIGTERM (graceful) or SIGKILL.
// The group outlives its leader while members remain, so this reaches
// them after the leader exited too.
func signalGroup(cmd *exec.Cmd, graceful bool) {
	sig := syscall.SIGKILL
	if graceful {
		sig = syscall.SIGTERM
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
}

// killGroup kills every process left in the program's group.
func killGroup(cmd *exec.Cmd) { signalGroup(cmd, false) }

// awaitGroup returns once no process is left in the program's group, or
// when deadline fires.
func awaitGroup(cmd *exec.Cmd, deadline <-chan time.Time) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for syscall.Kill(-cmd.Process.Pid, 0) == nil {
		select {
		case <-deadline:
			return
		case <-tick.C:
		}
	}
}
