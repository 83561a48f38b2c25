package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/batonrun/baton/agent/notify"
	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/units"
)

// The run's events go to the webhooks of --notify through a.notifier (nil
// without --notify: every helper here is then a no-op). Each helper is one
// line at its place in the lifecycle; sending never waits for a webhook
// (see package notify).

// notifyCloseWait is how long the notifications still queued at exit may
// take to go out.
const notifyCloseWait = 5 * time.Second

// openNotifier starts the notifier of --notify.
func (a *agent) openNotifier() {
	if len(a.cfg.Notify) == 0 {
		return
	}
	a.notifier = notify.New(a.cfg.Notify, notify.Options{Logger: a.log, Environ: a.deps.Environ, UserAgent: "baton/" + a.deps.Version})
	hosts := make([]string, len(a.cfg.Notify))
	for i, u := range a.cfg.Notify {
		hosts[i] = notify.Redact(u)
	}
	a.log.Info("notifications on", "webhooks", strings.Join(hosts, ","))
}

// closeNotifier gives the notifications still queued notifyCloseWait to go
// out, less if a stop signal came and the stop window is shorter, then
// drops the rest.
func (a *agent) closeNotifier() {
	if a.notifier == nil {
		return
	}
	wait := notifyCloseWait
	if at := a.stopAt.Load(); at != 0 {
		if w := a.cfg.StopBudget(a.desc.Platform).Window; w > 0 {
			left := w - time.Since(time.Unix(0, at)) - time.Second
			wait = min(wait, max(left, time.Second))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	a.notifier.Close(ctx)
}

// notify sends one event of the run; status is nil for events that carry
// none.
func (a *agent) notify(event string, seq int64, status *int, message string) {
	if a.notifier == nil {
		return
	}
	a.notifier.Send(notify.Event{Event: event, Run: a.cfg.RunID, Seq: seq, Platform: a.desc.Platform,
		Instance: a.desc.InstanceID, Host: a.desc.Host, Message: message, Status: status})
}

// notifyStarted: the trainer is about to start, from checkpoint resumeFrom
// (0: fresh).
func (a *agent) notifyStarted(resumeFrom int64) {
	msg := "starting fresh: no checkpoint yet"
	if resumeFrom > 0 {
		msg = fmt.Sprintf("resumed from checkpoint %d", resumeFrom)
	}
	a.notify(notify.RunStarted, resumeFrom, nil, msg)
}

// notifyCommitted: checkpoint m is in the store (at most one notice a
// minute goes out).
func (a *agent) notifyCommitted(m *checkpoint.Manifest, reason string) {
	a.notify(notify.CheckpointCommitted, m.Seq, nil, fmt.Sprintf("checkpoint %d committed (%s): %s, %s, %s new",
		m.Seq, reason, units.Plural(len(m.Files), "file"), units.Bytes(m.Size), units.Bytes(m.NewBytes)))
}

// notifyGaveUp: the host was given up (bad GPU health, a hang), with the
// status baton will exit with.
func (a *agent) notifyGaveUp(g giveUp) {
	a.notify(notify.HostGivenUp, a.lastSeq.Load(), notify.StatusOf(g.code), "host given up: "+g.reason)
}

// notifyLost: another host took the run over.
func (a *agent) notifyLost(err error) {
	msg := "another host took the run over: the trainer is stopped and nothing more is committed from this one"
	if err != nil && !errors.Is(err, checkpoint.ErrLeaseLost) {
		msg += ": " + err.Error()
	}
	a.notify(notify.LeaseLost, a.lastSeq.Load(), notify.StatusOf(ExitLeaseLost), msg)
}

// notifyFinalCommitFailed: what the trainer saved after the last commit is
// only on this host's disk.
func (a *agent) notifyFinalCommitFailed() {
	a.notify(notify.FinalCommitFailed, a.lastSeq.Load(), notify.StatusOf(ExitFinalCommitFailed), fmt.Sprintf(
		"final commit failed: what the trainer saved after checkpoint %d is only in %s on this host; no exit action", a.lastSeq.Load(), a.dir))
}

// notifyFinished: baton run exits with code (err: why, if it failed).
func (a *agent) notifyFinished(code int, err error) {
	msg := fmt.Sprintf("exit status %d: %s", code, exitMeaning(code))
	if a.stopAt.Load() != 0 {
		msg += " after a stop signal (the platform's or a user's)"
	}
	if err != nil {
		msg += ": " + err.Error()
	}
	a.notify(notify.RunFinished, a.lastSeq.Load(), notify.StatusOf(code), msg)
}

// exitMeaning says what baton run's exit status means.
func exitMeaning(code int) string {
	switch {
	case code == 0:
		return "the trainer succeeded"
	case code == ExitSetup:
		return "the run could not be set up (or the trainer exited 1)"
	case code == 2:
		return "bad configuration (or the trainer exited 2)"
	case code == ExitFinalCommitFailed:
		return "the final commit failed"
	case code == ExitLeaseHeld:
		return "another host holds the run"
	case code == ExitLeaseLost:
		return "another host took the run over"
	case code == ExitUnhealthy || code == ExitHung:
		return "the host was given up"
	case code > 128 && code <= 128+64:
		return fmt.Sprintf("stopped by signal %d", code-128)
	}
	return "the trainer failed"
}
