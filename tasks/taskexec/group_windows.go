//go:build windows

package taskexec

import (
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/windows"
)

// progressSupported: Windows passes no descriptor past stderr to a
// process (cmd.ExtraFiles), so TASKGATE_PROGRESS is not set there.
const progressSupported = false

// newProcessGroup starts the program in a console process group of its
// own, so that a graceful stop can send it CTRL_BREAK_EVENT alone.
func newProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: windows.CREATE_NEW_PROCESS_GROUP}
}

// signalGroup sends the group CTRL_BREAK_EVENT (graceful: a Go program
// sees os.Interrupt), or kills the process. Where the break
// cannot be sent (no console is shared) the process is killed at once.
// Windows has no process groups to kill: children the program started are
// not reached.
func signalGroup(cmd *exec.Cmd, graceful bool) {
	if graceful && windows.GenerateConsoleCtrlEvent(windows.CTRL_BREAK_EVENT, uint32(cmd.Process.Pid)) == nil {
		return
	}
	_ = cmd.Process.Kill()
}

// killGroup kills the program, if it still runs.
func killGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }

// awaitGroup has no group to watch once the program exited.
func awaitGroup(*exec.Cmd, <-chan time.Time) {}
