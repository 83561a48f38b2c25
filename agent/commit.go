package agent

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"path/filepath"
	"time"

	"github.com/batonrun/baton/agent/metrics"
	"github.com/batonrun/baton/agent/platform"
	"github.com/batonrun/baton/agent/supervise"
	"github.com/batonrun/baton/checkpoint"
)

// commitLoop commits on the timer (once the directory is quiet), when asked
// through trigger, and at once when a stop begins.
func (a *agent) commitLoop(ctx context.Context, sup *supervise.Supervisor, trigger <-chan chan error) {
	var tick <-chan time.Time
	if a.cfg.CheckpointInterval > 0 {
		t := time.NewTicker(a.cfg.CheckpointInterval)
		defer t.Stop()
		tick = t.C
	}
	stopping := sup.Stopping()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stopping:
			stopping = nil
			tick = nil // the final commit follows the trainer's exit
			a.commitNow(ctx, "stop")
		case <-tick:
			if a.waitQuiet(ctx) {
				a.commitNow(ctx, "interval")
			}
		case reply := <-trigger:
			reply <- a.commitNow(ctx, "requested")
		}
	}
}

// commitNow commits the checkpoint directory unless the lease is lost, and
// applies retention after a commit.
func (a *agent) commitNow(ctx context.Context, reason string) error {
	a.commitMu.Lock()
	defer a.commitMu.Unlock()
	if a.isLost() {
		return checkpoint.ErrLeaseLost
	}
	start := time.Now()
	m, err := a.repo.Commit(ctx, a.lease, a.dir, map[string]string{"reason": reason})
	switch {
	case errors.Is(err, checkpoint.ErrLeaseLost):
		a.metrics.CommitDone(time.Since(start), 0, 0, metrics.ResultFailed)
		a.markLost(err)
		return err
	case errors.Is(err, checkpoint.ErrDirChanged):
		a.metrics.CommitDone(time.Since(start), 0, 0, metrics.ResultDropped)
		a.log.Info("commit dropped: the trainer was still writing; the next one will catch it", "reason", reason, "err", err)
		return err
	case err != nil:
		a.metrics.CommitDone(time.Since(start), 0, 0, metrics.ResultFailed)
		a.log.Error("commit failed", "reason", reason, "err", err)
		return err
	}
	a.metrics.CommitDone(time.Since(start), m.NewBytes, m.Size-m.NewBytes, metrics.ResultOK)
	a.log.Info("checkpoint committed", "seq", m.Seq, "reason", reason, "files", len(m.Files), "bytes", m.Size,
		"new_bytes", m.NewBytes, "took", time.Since(start).Round(time.Millisecond).String())
	if reason != "final" {
		a.uploadLog(ctx)
	}
	if a.cfg.Keep > 0 {
		if _, err := a.repo.Retain(ctx, a.cfg.Keep, checkpoint.DefaultGCGrace); err != nil {
			a.log.Warn("retention failed", "err", err)
		}
	}
	return nil
}

// waitQuiet waits until no file of the checkpoint directory has changed for
// the quiescence period, at most one checkpoint interval. It reports false
// if ctx ended.
func (a *agent) waitQuiet(ctx context.Context) bool {
	if a.cfg.Quiescence <= 0 {
		return true
	}
	poll := min(max(a.cfg.Quiescence/5, 100*time.Millisecond), time.Second)
	deadline := time.Now().Add(a.cfg.CheckpointInterval)
	last, quietSince := dirState(a.dir), time.Now()
	t := time.NewTicker(poll)
	defer t.Stop()
	for time.Since(quietSince) < a.cfg.Quiescence && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		if now := dirState(a.dir); now != last {
			last, quietSince = now, time.Now()
		}
	}
	return true
}

// state sums up a directory: files, bytes and the newest mtime.
type state struct {
	files, bytes int64
	newest       time.Time
}

func dirState(dir string) state {
	var s state
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			s.files++
			s.bytes += fi.Size()
			if fi.ModTime().After(s.newest) {
				s.newest = fi.ModTime()
			}
		}
		return nil
	})
	return s
}

// finalCommit commits what the trainer left, after it exited.
func (a *agent) finalCommit(ctx context.Context) {
	for try := 0; try < 3; try++ {
		err := a.commitNow(ctx, "final")
		if !errors.Is(err, checkpoint.ErrDirChanged) {
			return
		}
		a.waitQuiet(ctx) // something (an orphan?) is still writing
	}
}

// release gives the lease up so the next host takes over at once.
func (a *agent) release(ctx context.Context) {
	if a.isLost() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	a.metrics.SetLease(false)
	if err := a.lease.Release(ctx); err != nil {
		a.log.Warn("could not release the lease; the next host waits for it to expire", "err", err)
	}
}

// exitAction stops or terminates the machine as configured. A failure is
// logged; it never hangs the exit (every API call has a timeout).
func (a *agent) exitAction(ctx context.Context, success bool, getenv func(string) string) {
	name := a.cfg.OnExit
	if !success {
		name = a.cfg.FailureAction()
	}
	action, err := platform.ParseAction(name)
	if err != nil || action == platform.ActionNone {
		return
	}
	c, err := platform.NewController(a.desc, getenv, http.DefaultClient, platform.ControllerOptions{Logger: a.log})
	if err != nil {
		a.log.Error("exit action not possible", "action", name, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := action.Do(ctx, c); err != nil {
		a.log.Error("exit action failed", "action", name, "err", err)
		return
	}
	a.log.Info("exit action done", "action", name, "platform", a.desc.Platform)
}
