package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrReaperClosed is returned by [Reaper.Start] and [Reaper.WaitAll] after
// [Reaper.Close], and by [Child.Wait] for a child whose exit the Reaper had
// not seen when it was closed.
var ErrReaperClosed = errors.New("supervise: reaper closed")

// BecomeSubreaper marks the calling process a child subreaper
// (prctl(PR_SET_CHILD_SUBREAPER)): processes orphaned below it are
// re-parented to it instead of to PID 1, so its [Reaper] reaps them. A process
// that is already PID 1 of its PID namespace gets the orphans anyway and does
// not need it. No privilege is required.
func BecomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("supervise: prctl(PR_SET_CHILD_SUBREAPER): %w", err)
	}
	return nil
}

// ReaperOptions configures a [Reaper].
type ReaperOptions struct {
	// Logger receives a debug record for every orphan reaped and warnings for
	// unexpected wait4 errors. Nil discards them.
	Logger *slog.Logger
	// OnOrphan, when set, is called with the status of every reaped process
	// that was not started through [Reaper.Start]. It is called from the
	// Reaper's goroutine, outside its lock, one call at a time; a slow
	// callback delays reaping.
	OnOrphan func(Exit)
	// Spawn, when set, runs each start of a child ([Reaper.Start]) and
	// returns when it has: the child is forked on the OS thread that runs
	// it, and inherits that thread's niceness and I/O priority, which on
	// Linux belong to each thread. baton run passes the Do of a
	// priority.Thread, a thread kept at baton's starting priority while
	// the rest of baton runs lowered, so that the trainer starts at the
	// former. An error fails the start. Nil: the fork happens on the
	// thread of Start's caller.
	Spawn func(start func()) error
}

// A Reaper is the process's only caller of wait4(-1). It reaps every child
// process that exits, delivers the status of each child it started to that
// [Child], and counts the rest as orphans. Create it with [NewReaper] and
// release it with [Reaper.Close]. Only one Reaper may run in a process, and
// while it runs no other code may wait for child processes (see the package
// documentation).
type Reaper struct {
	log      *slog.Logger
	onOrphan func(Exit)
	spawn    func(func()) error

	sigs chan os.Signal
	kick chan struct{}
	quit chan struct{}
	done chan struct{}

	closeOnce sync.Once

	// mu is held across starting a child and registering its pid, and across
	// every wait4 call together with the lookup of the reaped pid, so a child
	// can never be reaped before it is registered.
	mu       sync.Mutex
	children map[int]*Child
	idle     []chan error
	orphans  int
	closed   bool
}

// NewReaper starts a Reaper: a goroutine that waits for SIGCHLD and reaps
// every exited child with wait4(-1, WNOHANG). It reaps once at start, so
// zombies that predate it are collected too.
func NewReaper(opts ReaperOptions) *Reaper {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reaper{
		log:      log,
		onOrphan: opts.OnOrphan,
		spawn:    opts.Spawn,
		sigs:     make(chan os.Signal, 1),
		kick:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		children: make(map[int]*Child),
	}
	signal.Notify(r.sigs, syscall.SIGCHLD)
	go r.loop()
	return r
}

// Close stops the Reaper. Children started through it that have not been
// reaped yet are abandoned: their [Child.Wait] returns [ErrReaperClosed].
// Close the Reaper only after the processes it supervises are gone.
func (r *Reaper) Close() error {
	r.closeOnce.Do(func() {
		signal.Stop(r.sigs)
		close(r.quit)
		<-r.done

		r.mu.Lock()
		defer r.mu.Unlock()
		r.closed = true
		for pid, c := range r.children {
			c.err = ErrReaperClosed
			close(c.done)
			delete(r.children, pid)
		}
		for _, w := range r.idle {
			w <- ErrReaperClosed
		}
		r.idle = nil
	})
	return nil
}

// Orphans is the number of processes reaped so far that were not started
// through [Reaper.Start].
func (r *Reaper) Orphans() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.orphans
}

// WaitAll waits until the process has no child processes left at all: every
// child, registered or orphan, has exited and been reaped. It returns early
// with ctx's error, or [ErrReaperClosed] if the Reaper is closed first.
func (r *Reaper) WaitAll(ctx context.Context) error {
	w := make(chan error, 1)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrReaperClosed
	}
	r.idle = append(r.idle, w)
	r.mu.Unlock()
	r.poke()

	select {
	case err := <-w:
		return err
	case <-ctx.Done():
		r.mu.Lock()
		r.idle = slices.DeleteFunc(r.idle, func(x chan error) bool { return x == w })
		r.mu.Unlock()
		return ctx.Err()
	}
}

// poke asks the loop for a reaping pass without a SIGCHLD.
func (r *Reaper) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *Reaper) loop() {
	defer close(r.done)
	for {
		r.reapAll()
		select {
		case <-r.sigs:
		case <-r.kick:
		case <-r.quit:
			return
		}
	}
}

// reapAll reaps every child that has exited. Signals coalesce, so one SIGCHLD
// may stand for many exits: it loops until wait4 reports that no more children
// have exited (0) or that there are none at all (ECHILD).
func (r *Reaper) reapAll() {
	var orphans []Exit
	r.mu.Lock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ECHILD) {
			for _, w := range r.idle {
				w <- nil
			}
			r.idle = nil
			break
		}
		if err != nil {
			r.log.Warn("wait4 failed", "err", err)
			break
		}
		if pid <= 0 {
			break
		}
		e := exitFromWaitStatus(pid, ws)
		if c, ok := r.children[pid]; ok {
			delete(r.children, pid)
			c.exit = e
			close(c.done)
			continue
		}
		r.orphans++
		orphans = append(orphans, e)
	}
	r.mu.Unlock()

	for _, e := range orphans {
		r.log.Debug("reaped orphan", "pid", e.Pid, "status", e.String())
		if r.onOrphan != nil {
			r.onOrphan(e)
		}
	}
}

// Start starts cmd and registers its pid with the Reaper before the Reaper
// can reap it, so the child's status reaches the returned [Child] and nowhere
// else. Do not call cmd.Wait (nor Run, Output, CombinedOutput): wait with
// [Child.Wait]. Start takes cmd over:
//
//   - cmd must not come from exec.CommandContext (its watcher would need
//     cmd.Wait); cancel through the ctx of [Child.Wait] and [Child.Signal];
//   - cmd.Stdin must be nil or an *os.File;
//   - a cmd.Stdout or cmd.Stderr that is not an *os.File is fed from a pipe
//     that the Reaper copies, and cmd.WaitDelay bounds how long [Child.Wait]
//     waits for that output once the process has exited (0 waits until every
//     holder of the pipe has closed it, as exec.Cmd does);
//   - cmd.Process is released after the start (its Pid reads -1); use
//     [Child.Pid].
func (r *Reaper) Start(cmd *exec.Cmd) (*Child, error) {
	if cmd.Process != nil {
		return nil, errors.New("supervise: command already started")
	}
	if cmd.Cancel != nil {
		return nil, errors.New("supervise: command made by exec.CommandContext; use exec.Command and Child.Wait's context")
	}
	if cmd.Stdin != nil {
		if _, ok := cmd.Stdin.(*os.File); !ok {
			return nil, fmt.Errorf("supervise: stdin must be nil or *os.File, not %T", cmd.Stdin)
		}
	}

	c := &Child{r: r, done: make(chan struct{}), waitDelay: cmd.WaitDelay}
	if err := c.pipeOutput(cmd); err != nil {
		return nil, err
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		c.closePipes()
		return nil, ErrReaperClosed
	}
	var err error
	if r.spawn != nil {
		if serr := r.spawn(func() { err = cmd.Start() }); serr != nil {
			err = serr
		}
	} else {
		err = cmd.Start()
	}
	if err != nil {
		r.mu.Unlock()
		c.closePipes()
		return nil, fmt.Errorf("supervise: start: %w", err)
	}
	c.pid = cmd.Process.Pid
	r.children[c.pid] = c
	r.mu.Unlock()

	// The Reaper waits for the process, not os.Process: drop its pidfd.
	_ = cmd.Process.Release()
	c.startCopies()
	return c, nil
}

// A Child is a process started by [Reaper.Start].
type Child struct {
	r         *Reaper
	pid       int
	waitDelay time.Duration

	// done is closed by the Reaper once exit (or err) is set.
	done chan struct{}
	exit Exit
	err  error

	// Output pipes: the parent's read ends, the child's write ends (closed
	// after the start) and the copies to run.
	readers   []*os.File
	writers   []*os.File
	copies    []outputCopy
	copyWG    sync.WaitGroup
	closeRead sync.Once

	copyMu  sync.Mutex
	copyErr error
}

type outputCopy struct {
	dst io.Writer
	src *os.File
}

// Pid is the child's process id.
func (c *Child) Pid() int { return c.pid }

// Done is closed once the child has been reaped (or the Reaper closed).
func (c *Child) Done() <-chan struct{} { return c.done }

// Exit is the child's status; valid once [Child.Done] is closed.
func (c *Child) Exit() Exit { return c.exit }

// Signal sends sig to the child. It returns os.ErrProcessDone once the child
// has been reaped; until then its pid cannot be reused, so the signal cannot
// reach a stranger.
func (c *Child) Signal(sig syscall.Signal) error {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	select {
	case <-c.done:
		return os.ErrProcessDone
	default:
	}
	if err := unix.Kill(c.pid, sig); err != nil {
		return fmt.Errorf("supervise: kill %d: %w", c.pid, err)
	}
	return nil
}

// SignalGroup sends sig to the process group whose id is the child's pid,
// that is the group of a child started with SysProcAttr.Setpgid. The group
// may outlive the child. It returns os.ErrProcessDone when the group is empty.
func (c *Child) SignalGroup(sig syscall.Signal) error {
	err := unix.Kill(-c.pid, sig)
	if errors.Is(err, unix.ESRCH) {
		return os.ErrProcessDone
	}
	if err != nil {
		return fmt.Errorf("supervise: kill group %d: %w", c.pid, err)
	}
	return nil
}

// Wait waits for the child to be reaped and for its piped output to be
// copied, and returns its status. When the child's WaitDelay (cmd.WaitDelay)
// passes after the exit with output still open (a daemon the child left
// behind holds the pipe), the pipes are closed and the error wraps
// exec.ErrWaitDelay. A failed write to the output writers is returned too; the
// status is valid in both cases. When ctx ends first, Wait returns ctx's
// error; the child is not signalled.
func (c *Child) Wait(ctx context.Context) (Exit, error) {
	select {
	case <-c.done:
	case <-ctx.Done():
		return Exit{Pid: c.pid}, ctx.Err()
	}
	if c.err != nil {
		c.closeReaders()
		return Exit{Pid: c.pid}, c.err
	}

	drained := make(chan struct{})
	go func() {
		c.copyWG.Wait()
		close(drained)
	}()
	var delay <-chan time.Time
	if c.waitDelay > 0 && len(c.copies) > 0 {
		t := time.NewTimer(c.waitDelay)
		defer t.Stop()
		delay = t.C
	}
	var err error
	select {
	case <-drained:
	case <-delay:
		err = fmt.Errorf("supervise: output of pid %d still open after exit: %w", c.pid, exec.ErrWaitDelay)
	case <-ctx.Done():
		err = ctx.Err()
	}
	c.closeReaders()
	<-drained

	if err == nil {
		c.copyMu.Lock()
		err = c.copyErr
		c.copyMu.Unlock()
	}
	return c.exit, err
}

// pipeOutput replaces writers that are not files with pipes. When Stdout and
// Stderr are the same writer they share one pipe, so writes never interleave
// within a copy.
func (c *Child) pipeOutput(cmd *exec.Cmd) error {
	stdout, stderr := cmd.Stdout, cmd.Stderr
	if stdout != nil {
		if _, ok := stdout.(*os.File); !ok {
			w, err := c.newPipe(stdout)
			if err != nil {
				return err
			}
			cmd.Stdout = w
			if sameWriter(stdout, stderr) {
				cmd.Stderr = w
				return nil
			}
		}
	}
	if stderr != nil {
		if _, ok := stderr.(*os.File); !ok {
			w, err := c.newPipe(stderr)
			if err != nil {
				c.closePipes()
				return err
			}
			cmd.Stderr = w
		}
	}
	return nil
}

func (c *Child) newPipe(dst io.Writer) (*os.File, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("supervise: output pipe: %w", err)
	}
	c.readers = append(c.readers, pr)
	c.writers = append(c.writers, pw)
	c.copies = append(c.copies, outputCopy{dst: dst, src: pr})
	return pw, nil
}

// sameWriter compares two writers the way exec.Cmd does, tolerating dynamic
// types that cannot be compared.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

func (c *Child) closePipes() {
	for _, f := range c.writers {
		f.Close()
	}
	c.writers = nil
	c.closeReaders()
}

func (c *Child) closeReaders() {
	c.closeRead.Do(func() {
		for _, f := range c.readers {
			f.Close()
		}
	})
}

// startCopies closes the child's ends of the pipes in this process and
// starts copying their output.
func (c *Child) startCopies() {
	for _, f := range c.writers {
		f.Close()
	}
	c.writers = nil
	c.copyWG.Add(len(c.copies))
	for _, cp := range c.copies {
		go c.copyOutput(cp)
	}
}

// copyOutput copies one pipe to its writer until EOF or until Wait closes the
// pipe. After a failed write it keeps draining the pipe so the child never
// blocks on a full pipe.
func (c *Child) copyOutput(cp outputCopy) {
	defer c.copyWG.Done()
	_, err := io.Copy(cp.dst, cp.src)
	if err == nil || errors.Is(err, os.ErrClosed) {
		return
	}
	c.copyMu.Lock()
	if c.copyErr == nil {
		c.copyErr = fmt.Errorf("supervise: copy output of pid %d: %w", c.pid, err)
	}
	c.copyMu.Unlock()
	_, _ = io.Copy(io.Discard, cp.src)
}
