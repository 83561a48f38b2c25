package supervise

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// Exit is how a process ended.
type Exit struct {
	// Pid is the process id the status belongs to.
	Pid int
	// Code is the exit code of a process that exited, or -1 when a signal
	// killed it.
	Code int
	// Signal is the signal that killed the process; 0 when it exited.
	Signal syscall.Signal
	// CoreDump reports that the process dumped core when the signal killed it.
	CoreDump bool
	// Stopped is set by [Supervisor.Run] when a stop was requested while the
	// trainer ran: its end was asked for, not a failure to restart from.
	Stopped bool
	// Escalated is set by [Supervisor.Run] when the trainer's group outlived
	// the grace period and was killed with SIGKILL.
	Escalated bool
}

// Success reports whether the process exited with code 0.
func (e Exit) Success() bool { return e.Signal == 0 && e.Code == 0 }

// StatusCode is the exit status a shell would report for the process: the
// exit code, or 128 plus the signal number when a signal killed it. baton
// exits with it so that its own status is the trainer's.
func (e Exit) StatusCode() int {
	if e.Signal != 0 {
		return 128 + int(e.Signal)
	}
	return e.Code
}

// String describes the exit as "exit status 3" or "killed by signal
// terminated".
func (e Exit) String() string {
	if e.Signal != 0 {
		s := "killed by signal " + e.Signal.String()
		if e.CoreDump {
			s += " (core dumped)"
		}
		return s
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// exitFromWaitStatus converts a status returned by wait4.
func exitFromWaitStatus(pid int, ws unix.WaitStatus) Exit {
	e := Exit{Pid: pid, Code: ws.ExitStatus()}
	if ws.Signaled() {
		e.Code = -1
		e.Signal = ws.Signal()
		e.CoreDump = ws.CoreDump()
	}
	return e
}
