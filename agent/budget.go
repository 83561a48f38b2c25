package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/checkpoint"
)

// The stop budget: at a stop, baton says what the final commit will cost
// and whether the platform's stop window leaves room for it.
const (
	// defaultUploadRate is the commit rate, in bytes per second, assumed
	// until a commit of this host has measured one: 50 MiB/s, a modest
	// share of the 1 to 10 Gbit/s that GPU clouds give a container.
	defaultUploadRate = 50 << 20
	// minRateSample is the least a commit must have uploaded for its rate
	// to count: a smaller one measures the store's latency, not its
	// bandwidth.
	minRateSample = 16 << 20
	// stopBudgetTimeout bounds the reading of the newest manifest at a
	// stop; the estimate is worth nothing once the window is over.
	stopBudgetTimeout = 5 * time.Second
)

// commitEstimate is what a commit of the checkpoint directory is expected
// to cost.
type commitEstimate struct {
	// Bytes and Files are the size and number of the files that are new or
	// changed (size or mtime) since the last commit: all of them where
	// there was none. Chunks that a changed file shares with the last
	// commit are not sent again, so Bytes is an upper bound.
	Bytes int64
	Files int
	// Rate is the commit rate assumed, in bytes per second; Measured
	// reports whether a commit of this host measured it (else it is
	// defaultUploadRate).
	Rate     float64
	Measured bool
	// Duration is Bytes over Rate.
	Duration time.Duration
}

// estimateFinalCommit estimates the commit of dir that follows last (nil:
// none yet), leaving out what a commit leaves out (the exclude globs and
// baton's own entries). The rate is the one last was committed at, when
// this host (host, platformName) committed it and it uploaded enough to
// measure; otherwise defaultUploadRate.
func estimateFinalCommit(dir string, exclude []string, last *checkpoint.Manifest, host, platformName string) (commitEstimate, error) {
	var e commitEstimate
	var err error
	if e.Bytes, e.Files, err = changedSince(dir, exclude, last); err != nil {
		return e, err
	}
	e.Rate, e.Measured = defaultUploadRate, false
	if last != nil && last.Host == host && last.Platform == platformName {
		if r, ok := measuredRate(last); ok {
			e.Rate, e.Measured = r, true
		}
	}
	e.Duration = time.Duration(float64(e.Bytes) / e.Rate * float64(time.Second))
	return e, nil
}

// measuredRate is the rate commit m ran at: the bytes it uploaded over the
// time from its scan to its manifest (hashing, uploading and the re-check;
// the time spent hashing chunks the store already had counts too, so the
// rate errs low). ok is false when m uploaded too little to tell.
func measuredRate(m *checkpoint.Manifest) (rate float64, ok bool) {
	took := m.CreatedAt.Sub(m.ScannedAt)
	if m.NewBytes < minRateSample || took <= 0 {
		return 0, false
	}
	return float64(m.NewBytes) / took.Seconds(), true
}

// changedSince returns the size and number of the files of dir, as a
// commit sees it, that last does not hold with the same size and mtime.
func changedSince(dir string, exclude []string, last *checkpoint.Manifest) (int64, int, error) {
	type stamp struct {
		size  int64
		mtime time.Time
	}
	committed := map[string]stamp{}
	if last != nil {
		for _, f := range last.Files {
			committed[f.Path] = stamp{f.Size, f.MTime}
		}
	}
	var bytes int64
	var files int
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != dir {
				return nil // renamed away while the walk ran
			}
			return err
		}
		if p == dir {
			return nil
		}
		top := filepath.Dir(p) == dir
		if checkpoint.Excluded(d.Name(), exclude) || top && strings.HasPrefix(d.Name(), checkpoint.ReservedPrefix) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed since it was listed
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if c, ok := committed[filepath.ToSlash(rel)]; ok && c.size == fi.Size() && c.mtime.Equal(fi.ModTime()) {
			return nil
		}
		bytes += fi.Size()
		files++
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("estimating the final commit: %w", err)
	}
	return bytes, files, nil
}

// stopBudgetReport is the line logged at a stop: the estimate against what
// the stop window leaves after elapsed (the time since the stop began).
// warn reports that the commit will not fit.
func stopBudgetReport(e commitEstimate, b config.StopBudget, elapsed time.Duration) (msg string, warn bool) {
	rate := "the measured"
	if !e.Measured {
		rate = "an assumed" // nothing measured on this host yet
	}
	msg = fmt.Sprintf("final commit: ~%s MiB changed since the last commit, ~%s s at %s %s MiB/s",
		mib(e.Bytes), seconds(e.Duration), rate, mib(int64(e.Rate)))
	if b.Window <= 0 {
		return msg + "; no stop window on this platform: it takes as long as it needs", false
	}
	left := max(b.Window-elapsed, 0)
	afterGrace := max(b.Window-max(b.Grace, elapsed), 0)
	msg += fmt.Sprintf("; the stop window leaves ~%s s (~%s s once the trainer's %s s grace is over)",
		seconds(left), seconds(afterGrace), seconds(b.Grace))
	if e.Duration > left {
		return msg + "; it will not fit: commit right after each save (baton checkpoint commit, or SIGUSR1 to baton), commit more often, or lengthen the platform's stop window and set --stop-window (see docs/run.md, The stop budget)", true
	}
	return msg, false
}

// mib writes n bytes in MiB: one decimal under 10, none above.
func mib(n int64) string {
	v := float64(n) / (1 << 20)
	if v < 10 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// seconds writes d in seconds with one decimal.
func seconds(d time.Duration) string { return fmt.Sprintf("%.1f", d.Seconds()) }

// logStopBudget logs, as a stop begins, what the final commit will cost and
// what the stop window leaves it, as a warning when it will not fit. stopAt
// is when the stop began. It reads the newest checkpoint's manifest (for at
// most stopBudgetTimeout) and scans the checkpoint directory; whatever
// fails, it only logs. The stopping branch of commitLoop runs it on a
// goroutine of its own, beside the commit it starts:
//
//	go a.logStopBudget(ctx, time.Now())
func (a *agent) logStopBudget(ctx context.Context, stopAt time.Time) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopBudgetTimeout)
	defer cancel()
	var last *checkpoint.Manifest
	if a.repo != nil {
		m, err := a.repo.Manifest(ctx, 0)
		switch {
		case err == nil:
			last = m
		case errors.Is(err, checkpoint.ErrNoCheckpoint):
		default:
			a.log.Debug("stop budget: cannot read the newest checkpoint; every file counts as changed", "err", err)
		}
	}
	e, err := estimateFinalCommit(a.dir, a.cfg.Exclude, last, a.desc.Host, a.desc.Platform)
	if err != nil {
		a.log.Debug("stop budget: no estimate", "err", err)
		return
	}
	b := a.cfg.StopBudget(a.desc.Platform)
	msg, warn := stopBudgetReport(e, b, time.Since(stopAt))
	level := slog.LevelInfo
	if warn {
		level = slog.LevelWarn
	}
	a.log.Log(ctx, level, msg, "changed_bytes", e.Bytes, "changed_files", e.Files,
		"estimate_s", e.Duration.Round(100*time.Millisecond).Seconds(), "rate_bytes_per_s", int64(e.Rate),
		"rate_measured", e.Measured, "stop_window_s", b.Window.Seconds(), "grace_s", b.Grace.Seconds(), "platform", b.Platform)
}
