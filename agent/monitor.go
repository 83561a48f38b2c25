package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/batonrun/baton/agent/health"
	"github.com/batonrun/baton/agent/supervise"
	"github.com/batonrun/baton/agent/telemetry/gpu"
	"github.com/batonrun/baton/agent/telemetry/host"
	"github.com/batonrun/baton/agent/telemetry/record"
	"github.com/batonrun/baton/internal/units"
	"github.com/batonrun/baton/sync/storage"
)

// Exit statuses of a host given up for its health.
const (
	// ExitUnhealthy: a GPU was unhealthy (a critical XID, an uncorrectable
	// ECC error, a pending or failed row remap), at the start or during the
	// run; what the trainer saved was committed and the run is free to move
	// to another host.
	ExitUnhealthy = 77
	// ExitHung: the trainer hung (see --hang-timeout) and --on-hang is
	// give-up.
	ExitHung = 78
)

// giveUp is why the agent gave the host up: an exit status and a reason.
type giveUp struct {
	code   int
	reason string
	// remember: the machine itself is bad (a GPU, a hang), so the run
	// records it (see recordBadHost); GPUs missing at start are not.
	remember bool
}

// openGPUs opens NVML unless telemetry and the GPU check are both off. No
// driver is not an error: baton says so once and goes on without GPUs.
func (a *agent) openGPUs() {
	if a.cfg.TelemetryInterval == 0 && !a.cfg.GPUCheck {
		return
	}
	lib := a.deps.NVML
	if lib == nil {
		lib = gpu.New()
	}
	s, err := gpu.Open(lib, gpu.Options{Interval: a.cfg.TelemetryInterval, Logger: a.log})
	switch {
	case errors.Is(err, gpu.ErrNoDriver):
		a.log.Info("no NVIDIA driver: GPU telemetry and GPU health checks are off", "err", err)
		return
	case err != nil:
		a.log.Warn("NVML failed: GPU telemetry and GPU health checks are off", "err", err)
		return
	}
	info := s.Info()
	a.log.Info("GPUs", "count", len(info.Devices), "driver", info.Driver, "cuda", info.CUDA)
	a.gpus = s
}

// closeGPUs ends the NVML session when the sampler never ran.
func (a *agent) closeGPUs() {
	if a.gpus != nil {
		a.gpus.Close()
	}
}

// gpuGate refuses, before the run's lease is taken, a host that cannot
// train: one whose GPUs are fewer than the platform promised
// (RUNPOD_GPU_COUNT, Vast's GPU_COUNT, NVIDIA_VISIBLE_DEVICES), or none at
// all for want of a driver, as a restarted RunPod pod can come up; and one
// with a GPU already unhealthy. --gpu-check=false turns it off; no promise
// and no driver is a CPU run, as before.
func (a *agent) gpuGate(ctx context.Context) *giveUp {
	if !a.cfg.GPUCheck {
		return nil
	}
	if promised := a.desc.GPUCount; promised > 0 {
		seen, why := 0, "no NVIDIA driver"
		if a.gpus != nil {
			seen, why = len(a.gpus.Info().Devices), fmt.Sprintf("NVML sees %d", len(a.gpus.Info().Devices))
		}
		if seen < promised {
			reason := fmt.Sprintf("the platform promised %s, but %s: refusing to train on fewer (--gpu-check=false to run anyway)", units.Plural(promised, "GPU"), why)
			a.log.Error("GPUs missing at start", "promised", promised, "seen", seen, "platform", a.desc.Platform)
			return &giveUp{code: ExitUnhealthy, reason: reason}
		}
	}
	if a.gpus == nil {
		return nil
	}
	for _, r := range a.gpus.SampleOnce(ctx) {
		for _, p := range gpu.Check(r) {
			if p.Fatal {
				a.log.Error("GPU unhealthy at start: refusing to train on it", "gpu", p.Index, "uuid", p.UUID, "kind", p.Kind, "detail", p.Detail)
				return &giveUp{code: ExitUnhealthy, reason: "GPU " + p.UUID + ": " + p.Detail, remember: true}
			}
			a.log.Warn("GPU", "gpu", p.Index, "uuid", p.UUID, "kind", p.Kind, "detail", p.Detail)
		}
	}
	return nil
}

// progressWriter notes the time of the trainer's last output.
type progressWriter struct {
	w    io.Writer
	last *atomic.Int64 // Unix nanoseconds
}

func (p progressWriter) Write(b []byte) (int, error) {
	p.last.Store(time.Now().UnixNano())
	return p.w.Write(b)
}

// monitor samples the host (and the GPUs through their own sampler) every
// telemetry interval, feeds the metrics and the run's telemetry in the
// store, and applies the health policy: it gives the host up for a fatal GPU
// problem and restarts, gives up or reports a hung trainer. It runs until
// ctx ends.
func (a *agent) monitor(ctx context.Context, sup *supervise.Supervisor) {
	if a.cfg.TelemetryInterval == 0 {
		return
	}
	var events <-chan gpu.Event
	if a.gpus != nil {
		events = a.gpus.Events()
		go func() {
			if err := a.gpus.Run(ctx); err != nil && ctx.Err() == nil {
				a.log.Warn("GPU sampling ended", "err", err)
			}
		}()
	}
	hs, err := host.New(ctx, host.Options{Disks: a.disks()})
	if err != nil {
		a.log.Warn("host telemetry off", "err", err)
	}
	hang := health.NewHang(a.cfg.HangTimeout, time.Now())
	lastDir := dirState(a.dir)
	lowDisk := map[string]bool{}
	t := time.NewTicker(a.cfg.TelemetryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-events:
			a.record(record.As("gpu_event", e))
			if p := gpu.CheckEvent(e); p != nil {
				a.gpuProblem(sup, *p)
			}
		case now := <-t.C:
			if hs != nil {
				r, err := hs.Sample(ctx)
				if err != nil && ctx.Err() == nil {
					a.log.Debug("host telemetry incomplete", "err", err)
				}
				a.metrics.SetHost(r)
				a.record(r)
				for _, p := range host.CheckDisks(r, uint64(a.cfg.MinFreeDisk)) {
					if !lowDisk[p.Path] {
						a.log.Warn("disk nearly full: the next checkpoint may not fit", "problem", p.String())
					}
					lowDisk[p.Path] = true
				}
			}
			var rs []gpu.Reading
			if a.gpus != nil {
				rs = a.gpus.Latest()
				if len(rs) > 0 {
					a.record(record.As("gpu", rs))
				}
				for _, r := range rs {
					for _, p := range gpu.Check(r) {
						a.gpuProblem(sup, p)
					}
				}
			}
			if a.cfg.HangTimeout == 0 {
				continue // no hang detection: no need to walk the checkpoint directory
			}
			if d := dirState(a.dir); d != lastDir {
				lastDir = d
				hang.Progress(now)
			}
			hang.Progress(time.Unix(0, a.lastOutput.Load()))
			hang.Progress(time.Unix(0, a.attemptStart.Load())) // a (re)start is progress
			if !sup.Running() {
				hang.Reset(now) // between attempts (a restart's backoff) nothing can hang
				continue
			}
			if v := hang.Observe(now, health.Classify(rs)); v != nil {
				a.hung(sup, hang, *v, now)
			}
		}
	}
}

// gpuProblem acts on a GPU problem: a fatal one gives the host up (unless
// --on-unhealthy=report), the others are logged once.
func (a *agent) gpuProblem(sup *supervise.Supervisor, p gpu.Problem) {
	key := p.UUID + "/" + p.Kind
	if a.reported[key] {
		return
	}
	a.reported[key] = true
	if !p.Fatal {
		a.log.Warn("GPU", "gpu", p.Index, "uuid", p.UUID, "kind", p.Kind, "detail", p.Detail)
		return
	}
	if a.cfg.OnUnhealthy == "report" {
		a.log.Error("GPU unhealthy; carrying on (--on-unhealthy=report)", "gpu", p.Index, "uuid", p.UUID, "kind", p.Kind, "detail", p.Detail)
		return
	}
	a.log.Error("GPU unhealthy: committing and giving this host up", "gpu", p.Index, "uuid", p.UUID, "kind", p.Kind, "detail", p.Detail)
	a.setGiveUp(giveUp{code: ExitUnhealthy, reason: "GPU " + p.UUID + ": " + p.Detail, remember: true})
	sup.Stop(syscall.SIGTERM) // the stop commits at once, and again once the trainer is gone
}

// hung acts on a hung trainer as --on-hang says.
func (a *agent) hung(sup *supervise.Supervisor, h *health.Hang, v health.Verdict, now time.Time) {
	h.Reset(now) // one report per window; a restart starts the count again
	switch a.cfg.OnHang {
	case "report":
		a.log.Error("trainer hung; carrying on (--on-hang=report)", "why", v.String())
	case "give-up":
		a.log.Error("trainer hung: committing and giving this host up", "why", v.String())
		a.setGiveUp(giveUp{code: ExitHung, reason: "trainer hung: " + v.String(), remember: true})
		sup.Stop(syscall.SIGTERM)
	default: // restart
		a.log.Error("trainer hung: restarting it from the newest checkpoint", "why", v.String())
		sup.Interrupt(syscall.SIGTERM)
	}
}

func (a *agent) setGiveUp(g giveUp) {
	a.giveUpOnce.Do(func() { a.gaveUp.Store(&g) })
}

// record appends one record to the run's telemetry in the store.
func (a *agent) record(v any) {
	if a.recorder != nil {
		a.recorder.Add(v)
	}
}

// disks are the disks whose free space baton watches: the checkpoint
// directory's, and the working directory's (a RunPod /workspace volume, say).
func (a *agent) disks() map[string]string {
	d := map[string]string{"checkpoint": a.dir}
	if wd, err := os.Getwd(); err == nil {
		d["workspace"] = wd
	}
	return d
}

// startMetrics serves the metrics endpoint if one is configured. A port
// that cannot be had is logged; the run goes on without it.
func (a *agent) startMetrics(ctx context.Context) {
	if a.cfg.MetricsAddr == "" {
		return
	}
	srv, err := a.metrics.Listen(a.cfg.MetricsAddr, a.cfg.MetricsToken, a.log)
	if err != nil {
		a.log.Warn("metrics endpoint off", "addr", a.cfg.MetricsAddr, "err", err)
		return
	}
	go srv.Serve(ctx)
}

// telemetryStore is the store as the telemetry writes to it: every request
// retried (storage.WithRetry) as the checkpoint repository's are, so that a
// part is not left for the next upload by one dropped connection.
func (a *agent) telemetryStore() storage.Store {
	return storage.WithRetry(a.store, storage.DefaultRetry())
}

// startRecorder starts the run's telemetry in the store, under the same
// segment name as the trainer's log.
func (a *agent) startRecorder(segment string) {
	if a.cfg.TelemetryInterval == 0 || a.cfg.TelemetryUpload == 0 {
		return
	}
	r, err := record.New(a.telemetryStore(), record.Options{Run: a.cfg.RunID, Segment: segment, Interval: a.cfg.TelemetryUpload, Log: a.log, Key: a.repo.Key()})
	if err != nil {
		a.log.Warn("telemetry stays local", "err", err)
		return
	}
	a.recorder = r
}

// closeRecorder stores what telemetry is left.
func (a *agent) closeRecorder() {
	if a.recorder == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.recorder.Close(ctx); err != nil {
		a.log.Warn("telemetry not fully stored", "err", err)
	}
	if a.stopAt.Load() != 0 {
		return // a stop leaves no time to spare: the next run or gc compacts
	}
	// Merge the telemetry of segments that ended (earlier hosts of the run)
	// into a few objects, so that a month-long run leaves a few hundred.
	cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
	defer ccancel()
	if st, err := record.Compact(cctx, a.telemetryStore(), a.cfg.RunID, record.CompactOptions{Key: a.repo.Key()}); err != nil {
		a.log.Warn("telemetry compaction stopped; the next run tries again", "err", err)
	} else {
		a.log.Debug("telemetry compacted", "segments", st.Segments, "written", st.Written, "deleted", st.Deleted)
	}
}
