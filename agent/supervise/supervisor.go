package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// DefaultGrace is the grace period used when [Spec.Grace] is zero: the time
// between forwarding a stop signal to the trainer's group and killing the
// group. It leaves room inside Docker's default 10 s stop timeout (docker stop
// sends SIGKILL to baton itself after that) for the final commit to finish.
// baton run sets the grace from the platform's stop window instead
// (agent/config's StopBudget).
const DefaultGrace = 8 * time.Second

// DefaultWaitDelay is the wait used when [Spec.WaitDelay] is zero: how long
// [Supervisor.Run] keeps copying the trainer's output after its group is gone,
// in case a daemon it left behind (in another group) still holds the pipe.
const DefaultWaitDelay = 2 * time.Second

// ErrStopRequested is returned by [Supervisor.Run] when a stop was requested
// before the trainer could be started; the trainer is not started.
var ErrStopRequested = errors.New("supervise: stop requested")

// Spec describes one run of the trainer.
type Spec struct {
	// Path is the program. A name without a slash is looked up in baton's
	// PATH, as exec.Command does.
	Path string
	// Args are the arguments after the program name.
	Args []string
	// Env is the trainer's whole environment; nil inherits baton's.
	Env []string
	// Dir is the working directory; empty inherits baton's.
	Dir string
	// Stdout and Stderr receive the trainer's output. An *os.File (such as
	// os.Stdout, the container log) is handed to the trainer unchanged; any
	// other writer is fed from a pipe; nil discards.
	Stdout, Stderr io.Writer
	// Grace is the time from the first stop signal to SIGKILL of the group;
	// zero means [DefaultGrace].
	Grace time.Duration
	// WaitDelay bounds the copying of piped output after the group is gone;
	// zero means [DefaultWaitDelay].
	WaitDelay time.Duration
	// KeepGroup leaves the rest of the trainer's process group running when
	// the trainer itself exits. By default the survivors are killed with
	// SIGKILL, so a restarted trainer never competes with the workers of the
	// last attempt for the GPUs.
	KeepGroup bool
}

// A Supervisor runs the trainer, one [Spec] at a time, through a [Reaper].
// Its stop state is one-way: once a stop has been requested (by
// [Supervisor.Stop], [Supervisor.Forward] or the cancellation of Run's
// context) the current trainer is stopped and no further one is started.
type Supervisor struct {
	reaper   *Reaper
	log      *slog.Logger
	stopping chan struct{}

	mu      sync.Mutex
	running bool
	current *Child
	kick    chan struct{} // the current run's interrupt: starts its grace period
	stopped bool
	stopSig syscall.Signal
}

// NewSupervisor returns a Supervisor that starts trainers through r. A nil
// log discards the Supervisor's records.
func NewSupervisor(r *Reaper, log *slog.Logger) *Supervisor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Supervisor{reaper: r, log: log, stopping: make(chan struct{})}
}

// Stopping is closed when the first stop is requested. The agent starts its
// final commit when it closes, while the trainer is still saving.
func (s *Supervisor) Stopping() <-chan struct{} { return s.stopping }

// StopRequested reports whether a stop has been requested.
func (s *Supervisor) StopRequested() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

// Stop requests a graceful stop: sig (SIGTERM when 0) is sent to the running
// trainer's process group at once, and the grace period starts. A later call
// forwards its signal too (a second Ctrl-C reaches the trainer) but does not
// restart the grace period. Stop never blocks and may be called from any
// goroutine, before, during or after Run. It logs nothing: its caller, who
// knows why, logs the stop.
func (s *Supervisor) Stop(sig syscall.Signal) {
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.stopped = true
		s.stopSig = sig
		close(s.stopping)
	}
	if s.current != nil {
		s.forward(s.current, sig)
	}
}

// Running reports whether a trainer is running now (not between attempts).
func (s *Supervisor) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current != nil
}

// Interrupt stops the running trainer as Stop does (sig, SIGTERM when 0, to
// its group at once; SIGKILL when the grace period has passed) but leaves
// the Supervisor running: the exit counts as the trainer's own, so
// RunWithRestarts starts it again if its policy allows. It is how a hung
// trainer is restarted. It reports whether a trainer was running; it never
// blocks.
func (s *Supervisor) Interrupt(sig syscall.Signal) bool {
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		return false
	}
	s.log.Info("interrupting the trainer", "signal", sig.String(), "pgid", s.current.Pid())
	s.forward(s.current, sig)
	select {
	case s.kick <- struct{}{}:
	default: // already interrupted: its grace period runs
	}
	return true
}

// forward sends sig to c's group; s.mu is held.
func (s *Supervisor) forward(c *Child, sig syscall.Signal) {
	if err := c.SignalGroup(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.log.Warn("forwarding signal to the trainer failed", "signal", sig.String(), "pgid", c.Pid(), "err", err)
	}
}

// Forward calls [Supervisor.Stop] for every signal received on sigs until ctx
// ends or sigs is closed. Feed it from signal.Notify(ch, syscall.SIGTERM,
// syscall.SIGINT); signals that are not syscall.Signal values are ignored.
func (s *Supervisor) Forward(ctx context.Context, sigs <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case sig, ok := <-sigs:
			if !ok {
				return
			}
			if ss, ok := sig.(syscall.Signal); ok {
				s.log.Info("stop requested", "signal", ss.String())
				s.Stop(ss)
			}
		}
	}
}

// Run starts the trainer in a process group of its own and waits for it. Stop
// requests are forwarded to the group; when the group has not ended Grace
// after the first one, the group is killed. When ctx ends while the trainer
// runs, Run requests a stop with SIGTERM itself, waits for the trainer the
// same way, and returns its status with ctx's error. Once the trainer has exited, the rest of its group
// is killed unless spec.KeepGroup is set. A non-zero exit is not an error: it
// is in the returned [Exit]. Only one Run may be in progress at a time.
func (s *Supervisor) Run(ctx context.Context, spec Spec) (Exit, error) {
	exit, exited, err := s.run(ctx, spec)
	if exited {
		s.logExit(slog.LevelInfo, "trainer exited", exit)
	}
	return exit, err
}

// logExit logs how the trainer exited, with more attributes after the
// exit's own: the one line for the event.
func (s *Supervisor) logExit(level slog.Level, msg string, exit Exit, more ...any) {
	s.log.Log(context.Background(), level, msg, append([]any{"pid", exit.Pid, "status", exit.String(),
		"stopped", exit.Stopped, "escalated", exit.Escalated}, more...)...)
}

// run is Run without the exit's log line; exited reports whether the
// trainer ran and exited (then the exit is to be logged).
func (s *Supervisor) run(ctx context.Context, spec Spec) (exit Exit, exited bool, err error) {
	grace := spec.Grace
	if grace == 0 {
		grace = DefaultGrace
	}
	if grace < 0 {
		return Exit{}, false, fmt.Errorf("supervise: negative grace %v", grace)
	}
	waitDelay := spec.WaitDelay
	if waitDelay == 0 {
		waitDelay = DefaultWaitDelay
	}
	if err := ctx.Err(); err != nil {
		return Exit{}, false, err
	}

	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return Exit{}, false, errors.New("supervise: a trainer is already running")
	}
	if s.stopped {
		s.mu.Unlock()
		return Exit{}, false, ErrStopRequested
	}
	s.running = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.current = nil
		s.mu.Unlock()
	}()

	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Env = spec.Env
	cmd.Dir = spec.Dir
	cmd.Stdout = spec.Stdout
	cmd.Stderr = spec.Stderr
	cmd.WaitDelay = waitDelay
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	child, err := s.reaper.Start(cmd)
	if err != nil {
		return Exit{}, false, err
	}
	s.log.Info("trainer started", "pid", child.Pid(), "path", spec.Path)

	// A stop requested between the start and this registration has not
	// reached the group yet.
	kick := make(chan struct{}, 1)
	s.mu.Lock()
	s.current, s.kick = child, kick
	if s.stopped {
		s.forward(child, s.stopSig)
	}
	s.mu.Unlock()

	stopping := s.stopping
	ctxDone := ctx.Done()
	var graceC <-chan time.Time
	startGrace := func() { // once: a stop after an interrupt does not extend it
		if graceC == nil {
			t := time.NewTimer(grace)
			graceC = t.C
		}
	}
	escalated, canceled := false, false
wait:
	for {
		select {
		case <-child.Done():
			break wait
		case <-ctxDone:
			ctxDone = nil
			canceled = true
			s.log.Info("stop requested: the context ended", "signal", syscall.SIGTERM.String())
			s.Stop(syscall.SIGTERM)
		case <-stopping:
			stopping = nil
			startGrace()
		case <-kick:
			kick = nil
			startGrace()
		case <-graceC:
			graceC = make(chan time.Time) // spent; never fires again
			escalated = true
			s.log.Warn("trainer outlived the grace period; killing its group", "pgid", child.Pid(), "grace_s", grace.Seconds())
			s.mu.Lock()
			s.forward(child, syscall.SIGKILL)
			s.mu.Unlock()
		}
	}

	if !spec.KeepGroup || child.Exit().Pid == 0 {
		// The leader is gone; what is left of its group goes too. (After a
		// closed Reaper the leader may still run: kill it all.)
		if err := child.SignalGroup(syscall.SIGKILL); err == nil {
			s.log.Debug("killed what was left of the trainer's group", "pgid", child.Pid())
		}
	}
	s.mu.Lock()
	s.current, s.kick = nil, nil
	stopped := s.stopped
	s.mu.Unlock()

	exit, err = child.Wait(context.WithoutCancel(ctx))
	if errors.Is(err, ErrReaperClosed) {
		return Exit{Pid: child.Pid()}, false, fmt.Errorf("supervise: trainer pid %d: %w", child.Pid(), err)
	}
	if err != nil {
		// The status is valid; only the output copy fell short.
		s.log.Warn("trainer output incomplete", "pid", child.Pid(), "err", err)
	}
	exit.Stopped = stopped
	exit.Escalated = escalated
	if canceled {
		return exit, true, fmt.Errorf("supervise: trainer stopped: %w", ctx.Err())
	}
	return exit, true, nil
}
