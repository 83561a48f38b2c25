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
	"github.com/batonrun/baton/sync/storage"
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
	// A trainer that writes nothing into the checkpoint directory for one
	// interval is probably saving somewhere else: say so, once.
	emptyAfter := a.cfg.CheckpointInterval
	if emptyAfter <= 0 {
		emptyAfter = 15 * time.Minute
	}
	emptyCheck := time.NewTimer(emptyAfter)
	defer emptyCheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-emptyCheck.C:
			if !a.hasFiles() {
				a.log.Warn("the trainer has written nothing into its checkpoint directory: is it saving somewhere else? baton commits only BATON_CHECKPOINT_DIR",
					"dir", a.dir, "running_for", emptyAfter.String())
			}
		case <-stopping:
			stopping = nil
			tick = nil // the final commit follows the trainer's exit
			a.stopAt.CompareAndSwap(0, time.Now().UnixNano())
			go a.logStopBudget(ctx, time.Unix(0, a.stopAt.Load()))
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

// commitNow commits the checkpoint directory unless the lease is lost,
// records in the directory which checkpoint it now holds, and applies
// retention after a commit. An empty directory is not committed
// (checkpoint.ErrEmpty).
func (a *agent) commitNow(ctx context.Context, reason string) error {
	a.commitMu.Lock()
	defer a.commitMu.Unlock()
	if a.isLost() {
		return checkpoint.ErrLeaseLost
	}
	start := time.Now()
	m, err := a.repo.Commit(ctx, a.lease, a.dir, map[string]string{"reason": reason})
	switch {
	case errors.Is(err, checkpoint.ErrEmpty):
		a.log.Debug("nothing to commit: the checkpoint directory is empty", "reason", reason)
		return err
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
	a.lastSeq.Store(m.Seq)
	a.notifyCommitted(m, reason)
	a.log.Info("checkpoint committed", "seq", m.Seq, "reason", reason, "files", len(m.Files), "bytes", m.Size,
		"new_bytes", m.NewBytes, "took_s", time.Since(start).Round(time.Millisecond).Seconds())
	if err := writeDirRecord(a.dir, dirRecord{Store: a.store.String(), Run: a.cfg.RunID, Seq: m.Seq, Digest: m.Digest()}); err != nil {
		a.log.Warn("the commit is not recorded in the checkpoint directory; a restart will compare its contents instead", "err", err)
	}
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

// Final commit retries: a trainer that ended on its own leaves baton all
// the time it needs, so the final commit rides out a store outage of
// minutes; a stop leaves only the platform's window.
const (
	finalCommitPatience = 10 * time.Minute
	finalCommitBackoff  = 30 * time.Second // the longest wait between tries
)

// finalCommit commits what the trainer left, after it exited, retrying
// with backoff what may pass (the store unreachable, a server error): for
// finalCommitPatience when the trainer ended on its own, for the rest of the
// stop window when stopping. It reports whether everything
// the trainer saved is in the store (or there was nothing to save).
func (a *agent) finalCommit(ctx context.Context, stopping bool) bool {
	deadline := time.Now().Add(finalCommitPatience)
	if stopping {
		deadline = time.Now().Add(a.finalCommitWindow())
	}
	wait := time.Second
	for try := 1; ; try++ {
		err := a.commitNow(ctx, "final")
		switch {
		case err == nil || errors.Is(err, checkpoint.ErrEmpty):
			return true
		case errors.Is(err, checkpoint.ErrLeaseLost):
			return false
		case errors.Is(err, checkpoint.ErrDirChanged):
			a.waitQuiet(ctx) // something (an orphan?) is still writing
			continue
		}
		if !storage.IsRetryable(err) || !time.Now().Add(wait).Before(deadline) {
			a.log.Error("final commit: giving up", "tries", try, "err", err)
			return false
		}
		a.log.Warn("final commit failed; trying again", "try", try, "in_s", wait.Seconds(), "until", deadline.Format(time.RFC3339), "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		wait = min(2*wait, finalCommitBackoff)
	}
}

// finalCommitWindow is how long a final commit may keep trying after a
// stop: until a second before the stop window ends (counted from the stop
// signal), at least 5 s; with no window (nothing kills baton after a stop),
// as long as after a trainer that ended on its own.
func (a *agent) finalCommitWindow() time.Duration {
	b := a.cfg.StopBudget(a.desc.Platform)
	if b.Window <= 0 {
		return finalCommitPatience
	}
	left := b.Window - time.Second
	if at := a.stopAt.Load(); at != 0 {
		left -= time.Since(time.Unix(0, at))
	}
	return max(5*time.Second, left)
}

// release gives the lease up so the next host takes over at once.
func (a *agent) release(ctx context.Context) {
	if a.lease == nil || a.isLost() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	a.metrics.SetLease(false)
	if err := a.lease.Release(ctx); err != nil {
		a.log.Warn("could not release the lease; the next host waits for it to expire", "err", err)
	} else {
		a.log.Info("lease released", "run", a.cfg.RunID, "epoch", a.lease.Epoch())
	}
}

// exitAction stops or terminates the machine as --on-exit (success) or
// --on-failure say. A failure is logged; it never hangs the exit (every API
// call has a timeout).
func (a *agent) exitAction(ctx context.Context, success bool, getenv func(string) string) {
	name := a.cfg.OnExit
	if !success {
		name = a.cfg.FailureAction()
	}
	a.actOnMachine(ctx, name, getenv)
}

// actOnMachine carries out the exit action name (none, stop, terminate).
func (a *agent) actOnMachine(ctx context.Context, name string, getenv func(string) string) {
	action, err := platform.ParseAction(name)
	if err != nil || action == platform.ActionNone {
		return
	}
	c, err := platform.NewController(a.desc, getenv, http.DefaultClient, platform.ControllerOptions{Logger: a.log, RunPodURL: a.cfg.RunPodAPIURL, VastURL: a.cfg.VastAPIURL})
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
