// Package health decides from what baton observes whether a run can go on
// on this host: a GPU that reports a fatal error is given up, and a trainer
// that makes no progress while its GPUs do no useful work is taken as hung.
// It only judges; the agent acts (see docs/telemetry.md, "Health policy").
package health

import (
	"fmt"
	"time"

	"github.com/batonrun/baton/agent/telemetry/gpu"
)

// GPUState is what a round of GPU readings says about the work on them.
type GPUState int

// The states Classify returns.
const (
	// GPUUnknown: no GPU readings (no driver, telemetry off, or no GPU
	// reports its utilisation).
	GPUUnknown GPUState = iota
	// GPUWorking: at least one GPU does work that looks useful.
	GPUWorking
	// GPUIdle: every GPU is idle.
	GPUIdle
	// GPUStuck: every GPU is idle or pinned at full utilisation while
	// drawing little power, and at least one is pinned: the signature of
	// a collective (NCCL) waiting forever, which spins a kernel without
	// doing arithmetic.
	GPUStuck
)

// String names the state as the log and the metrics do.
func (s GPUState) String() string {
	switch s {
	case GPUWorking:
		return "working"
	case GPUIdle:
		return "idle"
	case GPUStuck:
		return "pinned at 100% at low power"
	default:
		return "unknown"
	}
}

// Thresholds of Classify.
const (
	// IdleUtil is the utilisation (percent) at or below which a GPU is idle.
	IdleUtil = 5
	// PinnedUtil is the utilisation at or above which a GPU may be pinned.
	PinnedUtil = 95
	// PinnedPowerFraction is the fraction of its power limit below which a
	// GPU at PinnedUtil is pinned rather than busy: real arithmetic at full
	// utilisation draws well over half the limit (an H100 under a bf16
	// matrix product draws 600-700 W of 700 W), a spinning kernel draws
	// little more than idle.
	PinnedPowerFraction = 0.3
)

// Classify says what the readings show. A GPU without a utilisation
// reading is left out; one at PinnedUtil without power readings counts as
// working, since nothing says otherwise.
func Classify(rs []gpu.Reading) GPUState {
	seen, idle, pinned := 0, 0, 0
	for _, r := range rs {
		if r.UtilGPU == nil {
			continue
		}
		seen++
		u := *r.UtilGPU
		switch {
		case u <= IdleUtil:
			idle++
		case u >= PinnedUtil && r.PowerW != nil && r.PowerLimitW != nil && *r.PowerLimitW > 0 &&
			*r.PowerW < PinnedPowerFraction**r.PowerLimitW:
			pinned++
		}
	}
	switch {
	case seen == 0:
		return GPUUnknown
	case idle == seen:
		return GPUIdle
	case idle+pinned == seen:
		return GPUStuck
	default:
		return GPUWorking
	}
}

// Hang tells a hung trainer: one that for Timeout wrote no output and no
// checkpoint while its GPUs did no useful work. Without GPU readings
// (GPUUnknown) output and checkpoints alone decide. A Hang is not safe for
// concurrent use; the agent feeds it from one goroutine.
type Hang struct {
	timeout  time.Duration
	progress time.Time // the last output or checkpoint change
	working  time.Time // the last time the GPUs looked at work
}

// NewHang returns a Hang with the given timeout (0: never hung) that counts
// from now.
func NewHang(timeout time.Duration, now time.Time) *Hang {
	return &Hang{timeout: timeout, progress: now, working: now}
}

// Progress records that the trainer wrote output or changed its checkpoint
// directory at t.
func (h *Hang) Progress(t time.Time) {
	if t.After(h.progress) {
		h.progress = t
	}
}

// Reset starts the count again from t: after a restart of the trainer, or
// after a hang was reported and the run goes on.
func (h *Hang) Reset(t time.Time) {
	h.progress, h.working = t, t
}

// Observe takes the GPUs' state at t and returns a non-nil *Verdict when the
// trainer is hung.
func (h *Hang) Observe(t time.Time, s GPUState) *Verdict {
	if s == GPUWorking {
		h.working = t
	}
	if h.timeout <= 0 {
		return nil
	}
	since := h.progress
	if h.working.After(since) {
		since = h.working
	}
	if t.Sub(since) < h.timeout {
		return nil
	}
	return &Verdict{Since: since, Quiet: t.Sub(since), GPUs: s, LastOutput: h.progress}
}

// Verdict says why a trainer is taken as hung.
type Verdict struct {
	// Since is when the trainer last showed progress (output, a
	// checkpoint, or GPUs at work).
	Since time.Time
	// Quiet is how long ago that was.
	Quiet time.Duration
	// GPUs is the GPUs' state now.
	GPUs GPUState
	// LastOutput is the time of the last output or checkpoint change.
	LastOutput time.Time
}

// String is the verdict as one log line.
func (v Verdict) String() string {
	gpus := "its GPUs " + v.GPUs.String()
	if v.GPUs == GPUUnknown {
		gpus = "no GPU telemetry"
	}
	return fmt.Sprintf("no output and no checkpoint for %s (%s)", v.Quiet.Round(time.Second), gpus)
}
