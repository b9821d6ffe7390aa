//go:build windows

package server

import (
	"os/exec"
	"syscall"

	"golang.org/x/sys/windows"
)

// newProcessGroup starts cmd in a console process group of its own, so
// that a graceful stop can send it CTRL_BREAK_EVENT alone.
func newProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: windows.CREATE_NEW_PROCESS_GROUP}
}

// signalGroup sends the group led by cmd CTRL_BREAK_EVENT (graceful: a Go
// program sees os.Interrupt), or kills the process. Where the break cannot
// be sent (no console is shared) the process is killed at once rather than
// left to run out the grace period. Windows has no process groups to kill:
// children the process started are not reached.
func signalGroup(cmd *exec.Cmd, graceful bool) {
	if graceful && windows.GenerateConsoleCtrlEvent(windows.CTRL_BREAK_EVENT, uint32(cmd.Process.Pid)) == nil {
		return
	}
	_ = cmd.Process.Kill()
}
