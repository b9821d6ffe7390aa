//go:build unix

package server

import (
	"os/exec"
	"syscall"
)

// newProcessGroup makes cmd the leader of a process group of its own, so
// that the signals of Stop reach the children a shell or a reloader starts.
func newProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends the group led by cmd SIGTERM (graceful) or SIGKILL.
// The group outlives its leader when children remain, so this works after
// the leader exited too.
func signalGroup(cmd *exec.Cmd, graceful bool) {
	sig := syscall.SIGKILL
	if graceful {
		sig = syscall.SIGTERM
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
}
