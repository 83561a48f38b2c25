package main

import "fmt"

// lowerSelf lowers every thread of the process to niceness nice (0: none
// is changed), so that a command a trainer runs, such as a checkpoint
// commit, takes only CPU time the trainer leaves over. Where the platform
// forbids it, the command warns and runs on as it is. Without e.lower
// (tests that run commands in their own process) it does nothing.
func (e env) lowerSelf(command string, nice int) {
	if nice == 0 || e.lower == nil {
		return
	}
	if _, err := e.lower(nice); err != nil {
		fmt.Fprintf(e.stderr, "baton %s: warning: cannot lower its priority, it competes with the trainer for the CPU: %v\n", command, err)
	}
}
