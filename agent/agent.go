// Package agent is the lifecycle of one run on one host, what `baton run`
// does: detect the platform, take the run's lease, pull the code and the
// data, restore the newest checkpoint, supervise the trainer, commit its
// checkpoint directory on a timer and when asked, commit once more when it
// stops, release the lease and carry out the exit action. Nothing imports it
// but cmd/baton.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/agent/metrics"
	"github.com/batonrun/baton/agent/platform"
	"github.com/batonrun/baton/agent/supervise"
	"github.com/batonrun/baton/agent/telemetry/gpu"
	"github.com/batonrun/baton/agent/telemetry/record"
	"github.com/batonrun/baton/checkpoint"
	bsync "github.com/batonrun/baton/sync"
	"github.com/batonrun/baton/sync/storeurl"
	"github.com/batonrun/baton/sync/transfer"
)

// Exit statuses of `baton run` besides the trainer's own.
const (
	// ExitSetup: baton could not prepare the run (store, code, data,
	// restore).
	ExitSetup = 1
	// ExitLeaseHeld: another host holds the run's lease; this one did not
	// start the trainer.
	ExitLeaseHeld = 75
	// ExitLeaseLost: another host took the run over while this one trained;
	// the trainer was stopped and nothing more was committed.
	ExitLeaseLost = 76
)

// Deps are the agent's ties to the process, injected so tests can drive it.
type Deps struct {
	// Environ is the process environment (os.Environ()).
	Environ []string
	// Root is the file system platform detection looks at (os.DirFS("/")).
	Root fs.FS
	// Stdout and Stderr receive the trainer's output unchanged.
	Stdout, Stderr io.Writer
	// Logger receives baton's own log.
	Logger *slog.Logger
	// Signals delivers SIGTERM and SIGINT (stop the trainer) and SIGUSR1
	// (commit now) sent to baton.
	Signals <-chan os.Signal
	// NVML is the GPU library (nil: the host's, through gpu.New); tests
	// hand in go-nvml's mock.
	NVML nvml.Interface
	// Version is baton's version, for the metrics' baton_info.
	Version string
}

// Run carries out one run of command under cfg (already validated) and
// returns baton's exit status: the trainer's, or one of the Exit constants.
func Run(ctx context.Context, cfg config.Config, command []string, d Deps) int {
	a := &agent{cfg: cfg, deps: d, log: d.Logger, metrics: metrics.New(), reported: map[string]bool{}}
	if a.log == nil {
		a.log = slog.Default()
	}
	code, err := a.run(ctx, command)
	if err != nil {
		a.log.Error("run failed", "err", err)
	}
	return code
}

type agent struct {
	cfg   config.Config
	deps  Deps
	log   *slog.Logger
	desc  platform.Description
	store bsync.Store
	repo  *checkpoint.Repo
	lease *checkpoint.Lease
	dir   string // the checkpoint directory, absolute

	logFile    *os.File // the trainer's output on this host, uploaded as a log segment
	logSegment string

	commitMu gosync.Mutex // one commit at a time
	lost     chan struct{}
	lostOnce gosync.Once

	gpus         *gpu.Sampler // nil: no driver, or telemetry and the GPU check off
	metrics      *metrics.Metrics
	recorder     *record.Recorder // nil: telemetry stays local
	lastOutput   atomic.Int64     // Unix nanoseconds of the trainer's last output
	attemptStart atomic.Int64     // Unix nanoseconds of the trainer's last start
	reported     map[string]bool  // GPU problems logged, by UUID/kind; the monitor's own
	gaveUp       atomic.Pointer[giveUp]
	giveUpOnce   gosync.Once
}

func (a *agent) run(ctx context.Context, command []string) (int, error) {
	if len(command) == 0 {
		return ExitSetup, errors.New("no trainer command: put it after --")
	}
	a.desc = platform.Detect(a.deps.Environ, a.deps.Root)
	if a.desc.Host == "" {
		a.desc.Host, _ = os.Hostname() // in a container: its id
	}
	a.log.Info("baton run", append([]any{"run", a.cfg.RunID}, attrs(a.desc.LogAttrs())...)...)

	// Replacing a platform's entrypoint must not cost the user SSH. It runs
	// before the reaper starts, so waiting for sshd's start is safe.
	if res, err := platform.SetupSSH(ctx, a.desc, platform.Getenv(a.deps.Environ), platform.SSHOptions{}); err != nil {
		a.log.Warn("ssh setup failed; the run goes on without it", "err", err)
	} else if res.Skipped == "" {
		a.log.Info("ssh ready", "keys_added", res.KeysAdded, "keys_present", res.KeysPresent, "sshd_started", res.Started)
	}

	var err error
	if a.dir, err = filepath.Abs(a.cfg.CheckpointDir); err != nil {
		return ExitSetup, err
	}
	getenv := platform.Getenv(a.deps.Environ)
	a.metrics.SetInfo(a.deps.Version, a.desc.Platform, a.cfg.RunID)
	a.openGPUs()
	defer a.closeGPUs()
	if g := a.gpuGate(ctx); g != nil {
		a.exitAction(ctx, false, getenv)
		return g.code, errors.New(g.reason)
	}
	if a.gpus != nil {
		cost := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "baton_gpu_sample_seconds",
			Help: "How long the last round of NVML queries took (the slow PCIe queries every tenth round)."},
			func() float64 { return a.gpus.SampleCost().Seconds() })
		for _, c := range []prometheus.Collector{a.gpus.Collector(a.desc.Host), cost} {
			if err := a.metrics.Register(c); err != nil {
				a.log.Warn("GPU metrics off", "err", err)
			}
		}
	}
	metricsCtx, stopMetrics := context.WithCancel(ctx)
	defer stopMetrics()
	a.startMetrics(metricsCtx)
	store, err := storeurl.Open(ctx, a.cfg.Store, storeurl.Options{Driver: a.cfg.S3Driver, Getenv: getenv, MaxConns: a.cfg.Workers})
	if err != nil {
		return ExitSetup, fmt.Errorf("store: %w", err)
	}
	a.store = &countingStore{Store: store, set: a.metrics.SetTransfersInFlight}
	holder := checkpoint.Holder{ID: holderID(a.desc), Host: a.desc.Host, Platform: a.desc.Platform}
	a.repo, err = checkpoint.Open(a.store, checkpoint.Options{
		Run: a.cfg.RunID, Holder: holder, ChunkSize: int64(a.cfg.ChunkSize), Workers: a.cfg.Workers,
		LeaseDuration: a.cfg.LeaseDuration, Logger: a.log,
	})
	if err != nil {
		return ExitSetup, err
	}
	a.lease, err = a.repo.Acquire(ctx)
	if errors.Is(err, checkpoint.ErrLeaseHeld) {
		return ExitLeaseHeld, err
	}
	if err != nil {
		return ExitSetup, fmt.Errorf("lease: %w", err)
	}
	a.metrics.SetLease(true)
	a.lost = make(chan struct{})
	renewCtx, stopRenew := context.WithCancel(ctx)
	defer stopRenew()
	go a.renew(renewCtx)

	if err := a.fetchCode(ctx); err != nil {
		a.release(ctx)
		return ExitSetup, err
	}
	if err := a.fetchData(ctx); err != nil {
		a.release(ctx)
		return ExitSetup, err
	}
	resumeFrom, err := a.prepareCheckpointDir(ctx)
	if err != nil {
		a.release(ctx)
		return ExitSetup, err
	}
	a.openLog()
	defer a.closeLog()
	a.startRecorder(strings.TrimSuffix(a.logSegment, ".log"))
	defer a.closeRecorder()
	exit, err := a.supervise(ctx, command, resumeFrom)
	if a.isLost() {
		return ExitLeaseLost, fmt.Errorf("%w: the trainer was stopped", checkpoint.ErrLeaseLost)
	}
	if err != nil && !errors.Is(err, supervise.ErrStopRequested) {
		a.log.Error("trainer", "err", err)
	}
	a.finalCommit(ctx)
	a.release(ctx)
	if g := a.gaveUp.Load(); g != nil {
		a.exitAction(ctx, false, getenv)
		a.log.Error("host given up", "reason", g.reason, "status", g.code)
		return g.code, nil
	}
	if errors.Is(err, supervise.ErrStopRequested) {
		// The stop came from outside (the platform stopping the pod, a user's
		// Ctrl-C): the machine's fate is already being decided elsewhere, and
		// --on-exit=terminate must not turn a Stop into a deletion.
		a.log.Info("stopped from outside: no exit action")
	} else {
		a.exitAction(ctx, exit.Success(), getenv)
	}
	a.log.Info("run ended", "trainer", exit.String(), "status", exit.StatusCode())
	return exit.StatusCode(), nil
}

// holderID names this host's claim on the run: stable across restarts of
// baton on the same instance, so a restarted agent takes its lease back at
// once.
func holderID(d platform.Description) string {
	id := d.InstanceID
	if id == "" {
		id = d.Host
	}
	if id == "" {
		id = "unknown-host" // never shared by design: Run fills Host from os.Hostname
	}
	return d.Platform + ":" + id
}

// renew keeps the lease alive; a lost lease stops the trainer.
func (a *agent) renew(ctx context.Context) {
	t := time.NewTicker(a.cfg.LeaseDuration / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := a.lease.Renew(ctx)
			if errors.Is(err, checkpoint.ErrLeaseLost) {
				a.markLost(err)
				return
			}
			if err != nil {
				a.log.Warn("lease renewal failed; trying again", "err", err)
			}
		}
	}
}

func (a *agent) markLost(err error) {
	a.lostOnce.Do(func() {
		a.metrics.SetLease(false)
		a.log.Error("lease lost: another host took the run over; stopping the trainer, committing nothing more", "err", err)
		close(a.lost)
	})
}

func (a *agent) isLost() bool {
	select {
	case <-a.lost:
		return true
	default:
		return false
	}
}

// fetchData pulls every SRC=DST dataset, skipping what is already present.
func (a *agent) fetchData(ctx context.Context) error {
	getenv := platform.Getenv(a.deps.Environ)
	for _, m := range a.cfg.Data {
		src, err := storeurl.Open(ctx, m.Src, storeurl.Options{Driver: a.cfg.S3Driver, Getenv: getenv, MaxConns: a.cfg.Workers})
		if err != nil {
			return fmt.Errorf("data %s: %w", m, err)
		}
		e := transfer.New(transfer.Options{Workers: a.cfg.Workers, PartSize: int64(a.cfg.PartSize), Logger: a.log})
		st, err := e.Pull(ctx, src, m.Dst)
		if err != nil {
			return fmt.Errorf("data %s: %w", m, err)
		}
		a.log.Info("data pulled", "src", src.String(), "dst", m.Dst, "files", st.Files, "bytes", st.Bytes, "up_to_date", st.SkippedFiles)
	}
	return nil
}

// prepareCheckpointDir restores the newest checkpoint into the directory
// and returns its seq (0: nothing to resume from). A non-empty directory
// whose newest checkpoint came from this very host is newer than or equal to
// it (the trainer saved after the last commit), so it is kept and committed
// instead.
func (a *agent) prepareCheckpointDir(ctx context.Context) (int64, error) {
	// A restore killed mid-swap leaves a directory that is neither
	// checkpoint: finish or undo it before anything looks at the directory.
	if err := checkpoint.RemoveLeftovers(a.dir); err != nil {
		return 0, fmt.Errorf("removing what an interrupted restore left in or beside %s: %w", a.dir, err)
	}
	latest, err := a.repo.Manifest(ctx, 0)
	if errors.Is(err, checkpoint.ErrNoCheckpoint) {
		a.log.Info("no checkpoint yet: the trainer starts fresh", "dir", a.dir)
		return 0, os.MkdirAll(a.dir, 0o755)
	}
	if err != nil {
		return 0, fmt.Errorf("reading the newest checkpoint: %w", err)
	}
	if latest.Host == a.desc.Host && latest.Platform == a.desc.Platform && !emptyDir(a.dir) {
		a.log.Info("keeping the local checkpoint directory: the newest checkpoint came from this host", "seq", latest.Seq, "dir", a.dir)
		return latest.Seq, nil
	}
	m, err := a.repo.Restore(ctx, latest.Seq, a.dir)
	if err != nil {
		return 0, err
	}
	a.log.Info("checkpoint restored", "seq", m.Seq, "files", len(m.Files), "bytes", m.Size, "from_host", m.Host, "from_platform", m.Platform)
	return m.Seq, nil
}

func emptyDir(dir string) bool {
	entries, err := os.ReadDir(dir)
	return err != nil || len(entries) == 0
}

// supervise runs the trainer with restarts, the commit loop and the
// control socket beside it.
func (a *agent) supervise(ctx context.Context, command []string, resumeFrom int64) (supervise.Exit, error) {
	if os.Getpid() != 1 {
		if err := supervise.BecomeSubreaper(); err != nil {
			a.log.Warn("cannot become a child subreaper; orphans of the trainer are left to PID 1", "err", err)
		}
	}
	reaper := supervise.NewReaper(supervise.ReaperOptions{Logger: a.log})
	defer reaper.Close()
	sup := supervise.NewSupervisor(reaper, a.log)

	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	trigger := make(chan chan error)
	sock, err := a.listen(loopCtx, trigger)
	if err != nil {
		return supervise.Exit{}, err
	}
	go a.handleSignals(loopCtx, sup, trigger)
	go a.monitor(loopCtx, sup)
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		a.commitLoop(loopCtx, sup, trigger)
	}()
	go func() {
		select {
		case <-a.lost:
			sup.Stop(syscall.SIGTERM)
		case <-loopCtx.Done():
		}
	}()

	path, err := exec.LookPath(command[0])
	if err != nil {
		return supervise.Exit{}, fmt.Errorf("trainer: %w", err)
	}
	policy := supervise.Policy{
		MaxRestarts: a.cfg.Restarts,
		Backoff:     supervise.ExponentialBackoff(a.cfg.RestartBackoff, 5*time.Minute),
		OnExit: func(attempt int, exit supervise.Exit, restart bool) {
			a.log.Info("trainer exited", "attempt", attempt, "exit", exit.String(), "restart", restart)
			if restart {
				a.metrics.TrainerRestarted()
				a.commitNow(ctx, "before a restart") // the next attempt resumes from what this one saved
			}
		},
	}
	dir := ""
	if a.cfg.Code != "" {
		dir = a.cfg.CodeDir
	}
	exit, err := sup.RunWithRestarts(ctx, policy, func(ctx context.Context, attempt int) (supervise.Spec, error) {
		a.attemptStart.Store(time.Now().UnixNano())
		env := append(append([]string(nil), a.deps.Environ...),
			"BATON_RUN_ID="+a.cfg.RunID,
			"BATON_CHECKPOINT_DIR="+a.dir,
			"BATON_RESUME="+boolString(resumeFrom > 0 || attempt > 0),
			"BATON_RESUME_FROM="+strconv.FormatInt(resumeFrom, 10),
			"BATON_ATTEMPT="+strconv.Itoa(attempt),
			"BATON_PLATFORM="+a.desc.Platform,
			"BATON_AGENT_SOCKET="+sock,
		)
		return supervise.Spec{Path: path, Args: command[1:], Env: env, Dir: dir,
			Stdout: a.tee(a.deps.Stdout), Stderr: a.tee(a.deps.Stderr), Grace: a.cfg.Grace}, nil
	})
	stopLoop()
	<-loopDone
	a.log.Info("trainer done", "orphans_reaped", reaper.Orphans(), "pid1", os.Getpid() == 1)
	return exit, err
}

func boolString(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func attrs(as []slog.Attr) []any {
	out := make([]any, len(as))
	for i, a := range as {
		out[i] = a
	}
	return out
}

// openLog starts this host's log segment: a local file that receives the
// trainer's stdout and stderr beside the container log, named by start time
// and holder so that segments sort in time order under runs/<run>/logs/.
func (a *agent) openLog() {
	seg := time.Now().UTC().Format("20060102T150405Z") + "-" + holderID(a.desc)
	seg = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, seg) + ".log"
	f, err := os.CreateTemp("", "baton-trainer-*.log")
	if err != nil {
		a.log.Warn("cannot keep the trainer's log for the store", "err", err)
		return
	}
	a.logFile, a.logSegment = f, seg
}

// tee copies w's writes into the log segment as well.
func (a *agent) tee(w io.Writer) io.Writer {
	if a.logFile != nil {
		w = io.MultiWriter(w, a.logFile)
	}
	return progressWriter{w: w, last: &a.lastOutput}
}

// uploadLog stores the log segment as it is now (after each commit, and at
// the end).
func (a *agent) uploadLog(ctx context.Context) {
	if a.logFile == nil {
		return
	}
	fi, err := a.logFile.Stat()
	if err == nil {
		err = a.repo.PutLog(ctx, a.logSegment, bsync.NewPayload(a.logFile, 0, fi.Size()))
	}
	if err != nil {
		a.log.Warn("could not store the trainer's log segment", "segment", a.logSegment, "err", err)
	}
}

// closeLog stores the log segment one last time and removes the local copy.
func (a *agent) closeLog() {
	if a.logFile == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a.uploadLog(ctx)
	a.logFile.Close()
	os.Remove(a.logFile.Name())
}
