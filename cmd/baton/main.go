// Command baton makes a training run outlive its container. This file wires
// the subcommands; each lives in a file of its own and reads like its manual.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/batonrun/baton/internal/priority"
	"github.com/batonrun/baton/internal/spell"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2 // bad flags, bad configuration, bad URL
)

// usageError marks an error as the user's to fix before anything ran; it
// exits with exitUsage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// command is one subcommand.
type command interface {
	// Run executes the command with the arguments after its name.
	Run(ctx context.Context, args []string) error
}

// env is what a command may read from the process: its streams and its
// environment, injected so tests can run main in-process.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	environ        []string
	// lower lowers the process's priority (priority.Lower); nil in tests
	// that run commands in their own process, which it must not lower.
	lower func(nice int, keep ...*priority.Thread) (priority.Lowered, error)
}

func main() {
	e := env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, environ: os.Environ(), lower: priority.Lower}
	ctx, stop := notifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, e, os.Args[1:])
	stop()
	os.Exit(code)
}

// interrupted is the cause of the context of a command stopped by a signal.
type interrupted struct{ sig syscall.Signal }

func (i interrupted) Error() string { return "interrupted (" + i.sig.String() + ")" }

// exitStatus is the shell's status for a process killed by the signal: 130
// for SIGINT, 143 for SIGTERM.
func (i interrupted) exitStatus() int { return 128 + int(i.sig) }

// notifyContext is signal.NotifyContext that remembers the signal: the first
// of sigs to arrive cancels the context with an interrupted cause. stop
// unregisters the signals and releases the context.
func notifyContext(parent context.Context, sigs ...os.Signal) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			if s, ok := sig.(syscall.Signal); ok {
				cancel(interrupted{s})
			} else {
				cancel(nil)
			}
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(nil)
	}
}

const usage = `baton makes a training run outlive its container.

Usage:
  baton run [flags] -- CMD ARGS...  run a trainer: restore, supervise, commit, and resume
                                    on the next host (the container's entrypoint)
  baton pull [flags] SRC DIR        copy a store (s3://bucket/prefix, file:///path) into DIR
  baton push [flags] DIR DST        copy DIR into a store
  baton checkpoint COMMAND          a run's checkpoints: commit, ls, show, restore, gc,
                                    pin, unpin, verify, hosts
  baton doctor [flags]              what baton sees here: platform, config, GPUs, disks, store
  baton launch --config run.yaml    start one host of the run on the cheapest offer that fits
  baton watch --config run.yaml     keep the run alive: launch a host whenever its lease lapses,
                                    until it is done (RunPod, Vast.ai, local; docs/launch.md)
  baton status --config run.yaml    the run from the store alone: holder, checkpoint, hosts, spend
  baton version                     print the version

Run "baton COMMAND -h" for a command's flags. Every command reads its settings
the same way: a flag, else its BATON_* variable (--part-size is BATON_PART_SIZE,
--run is BATON_RUN_ID), else the YAML file of --config, else the default; a flag
for one invocation only (--json, --force) has no variable. docs/config.md lists
them all.
`

// commandNames are the commands of baton, for a did-you-mean.
func commandNames() []string {
	return []string{"run", "pull", "push", "checkpoint", "doctor", "launch", "watch", "status", "version", "help"}
}

// run executes one command line and returns the exit status.
func run(ctx context.Context, e env, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return exitUsage
	}
	var cmd command
	switch args[0] {
	case "version", "--version", "-v":
		cmd = &versionCmd{env: e}
	case "pull":
		cmd = &pullCmd{env: e}
	case "push":
		cmd = &pushCmd{env: e}
	case "run":
		cmd = &runCmd{env: e}
	case "checkpoint":
		cmd = &checkpointCmd{env: e}
	case "doctor":
		cmd = &doctorCmd{env: e}
	case "launch": // issue 16
		cmd = &launchCmd{env: e}
	case "watch":
		cmd = &watchCmd{env: e}
	case "status":
		cmd = &statusCmd{env: e}
	case "help", "-h", "--help":
		fmt.Fprint(e.stdout, usage)
		return exitOK
	default:
		msg := fmt.Sprintf("baton: unknown command %q", args[0])
		if guess := spell.Closest(args[0], commandNames()); guess != "" {
			msg += "; did you mean " + guess + "?"
		}
		fmt.Fprintf(e.stderr, "%s (baton help lists the commands)\n", msg)
		return exitUsage
	}
	err := cmd.Run(ctx, args[1:])
	if err == nil || errors.Is(err, errHelpShown) {
		return exitOK
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code) // baton run: the trainer's status; the agent logged why
	}
	if sig, ok := errors.AsType[interrupted](context.Cause(ctx)); ok {
		// Whatever failed failed because the signal cancelled it: the
		// transfers write to temporary names, so nothing half-done is left
		// under a real one.
		fmt.Fprintf(e.stderr, "baton %s: interrupted\n", args[0])
		return sig.exitStatus()
	}
	fmt.Fprintf(e.stderr, "baton %s: %s\n", args[0], redactEnv(oneLine(err.Error()), e.environ))
	if errors.As(err, new(usageError)) {
		return exitUsage
	}
	return exitFailure
}
