// Package agent is the lifecycle of one run on one host, what `baton run`
// does: detect the platform, take the run's lease, pull the code and the
// data, restore the newest checkpoint, supervise the trainer, commit its
// checkpoint directory on a timer and when asked, commit once more when it
// stops, release the lease and carry out the exit action. Nothing imports it
// but cmd/baton.
package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/agent/launch"
	"github.com/batonrun/baton/agent/metrics"
	"github.com/batonrun/baton/agent/notify"
	"github.com/batonrun/baton/agent/platform"
	"github.com/batonrun/baton/agent/supervise"
	"github.com/batonrun/baton/agent/telemetry/gpu"
	"github.com/batonrun/baton/agent/telemetry/record"
	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/priority"
	"github.com/batonrun/baton/internal/redact"
	"github.com/batonrun/baton/internal/spell"
	"github.com/batonrun/baton/sync/storage"
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
	// ExitFinalCommitFailed: the trainer ended but what it saved since the
	// last commit could not be committed; it is only on this host's disk,
	// so no exit action ran.
	ExitFinalCommitFailed = 74
	// ExitLeaseLost: another host took the run over while this one trained;
	// the trainer was stopped and nothing more was committed.
	ExitLeaseLost = 76
)

// exitSignal is baton's status when a signal stopped it before the trainer
// started: 128 + the signal's number, as a shell reports it (143 for
// SIGTERM, 130 for SIGINT).
func exitSignal(sig syscall.Signal) int { return 128 + int(sig) }

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
	// Lower lowers the priority of every thread of the process but those
	// kept (priority.Lower), once the trainer is about to start; nil
	// leaves the process as it is (tests that run the agent in their own
	// process).
	Lower func(nice int, keep ...*priority.Thread) (priority.Lowered, error)
}

// Run carries out one run of command under cfg (already validated) and
// returns baton's exit status: the trainer's, or one of the Exit constants.
func Run(ctx context.Context, cfg config.Config, command []string, d Deps) int {
	a := &agent{cfg: cfg, deps: d, log: d.Logger, metrics: metrics.New(), reported: map[string]bool{}}
	if a.log == nil {
		a.log = slog.Default()
	}
	// One redaction point for baton's own log: every message and string
	// logged below (errors of the store, of --code and --data) loses its
	// secrets here.
	a.log = slog.New(redact.Handler(a.log.Handler(), d.Environ))
	a.openNotifier()
	code, err := a.run(ctx, command)
	if err != nil {
		a.log.Error("run failed", "err", err)
	}
	a.notifyFinished(code, err)
	a.closeNotifier()
	return code
}

type agent struct {
	cfg   config.Config
	deps  Deps
	log   *slog.Logger
	desc  platform.Description
	store storage.Store
	repo  *checkpoint.Repo
	lease *checkpoint.Lease
	dir   string // the checkpoint directory, absolute

	logFile    *os.File // the trainer's output on this host, uploaded as a log segment
	logSegment string
	segOut     *redact.Writer // the trainer's stdout and stderr into logFile, secrets removed
	segErr     *redact.Writer

	hostLock *hostLock       // this machine's claim on the checkpoint directory
	renewCtx context.Context // the lease's renewals run until it ends
	lastSeq  atomic.Int64    // the checkpoint the directory was last restored from or committed as
	stopAt   atomic.Int64    // Unix nanoseconds of the stop signal, 0 if none

	commitMu sync.Mutex // one commit at a time
	lost     chan struct{}
	lostOnce sync.Once

	gpus         *gpu.Sampler // nil: no driver, or telemetry and the GPU check off
	metrics      *metrics.Metrics
	recorder     *record.Recorder // nil: telemetry stays local
	lastOutput   atomic.Int64     // Unix nanoseconds of the trainer's last output
	attemptStart atomic.Int64     // Unix nanoseconds of the trainer's last start
	reported     map[string]bool  // GPU problems logged, by UUID/kind; the monitor's own
	gaveUp       atomic.Pointer[giveUp]
	giveUpOnce   sync.Once
	notifier     *notify.Notifier // --notify's webhooks; nil: none (agent/notify.go)
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
	// Until the trainer starts, SIGTERM and SIGINT cancel what is in flight
	// (the GPU check, a lease wait, a pull, a restore): no trainer starts,
	// nothing is committed, the lease is released.
	setupCtx, endSetup := a.watchSetupSignals(ctx)
	stoppedEarly := func() (int, error) {
		a.release(ctx)
		sig := endSetup()
		a.log.Info("stopped before the trainer started: nothing started, nothing committed", "signal", sig.String())
		return exitSignal(sig), nil
	}
	a.openGPUs()
	defer a.closeGPUs()
	g := a.gpuGate(setupCtx)
	if setupCtx.Err() != nil {
		return stoppedEarly()
	}
	if g != nil {
		endSetup()
		a.notifyGaveUp(*g)
		if g.remember {
			a.rememberFromGate(ctx, *g)
		}
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
	renewCtx, stopRenew := context.WithCancel(ctx)
	defer stopRenew()
	a.renewCtx = renewCtx
	defer func() { a.hostLock.release() }()
	resumeFrom, code, err := a.setUp(setupCtx)
	if setupCtx.Err() != nil {
		return stoppedEarly()
	}
	if sig := endSetup(); sig != 0 { // came after set-up ended: the trainer never started
		a.release(ctx)
		return exitSignal(sig), nil
	}
	if err != nil {
		a.release(ctx)
		switch {
		case code == ExitLeaseHeld && errors.Is(err, errHeldHere):
			// Another baton of this very machine trains: acting on the
			// machine would stop that one.
		case code == ExitLeaseHeld:
			a.supersededAction(ctx, getenv)
		case code == ExitUnhealthy:
			a.exitAction(ctx, false, getenv) // a machine the run gave up before
		case code == ExitSetup && a.cfg.OnFailure != "":
			if safe, why := a.localWorkSafe(); safe {
				a.exitAction(ctx, false, getenv)
			} else {
				a.log.Warn("--on-failure not carried out: "+why, "dir", a.dir)
			}
		}
		return code, err
	}
	a.openLog()
	defer a.closeLog()
	a.startRecorder(strings.TrimSuffix(a.logSegment, ".log"))
	defer a.closeRecorder()
	a.notifyStarted(resumeFrom)
	exit, err := a.supervise(ctx, command, resumeFrom)
	if a.isLost() {
		a.scrubSkipped("the lease was lost")
		a.supersededAction(ctx, getenv)
		return ExitLeaseLost, fmt.Errorf("%w: the trainer was stopped", checkpoint.ErrLeaseLost)
	}
	if err != nil && !errors.Is(err, supervise.ErrStopRequested) {
		a.log.Error("trainer", "err", err)
	}
	stopping := errors.Is(err, supervise.ErrStopRequested) || a.gaveUp.Load() != nil
	saved := a.finalCommit(ctx, stopping)
	if a.isLost() {
		a.scrubSkipped("the lease was lost")
		a.supersededAction(ctx, getenv)
		return ExitLeaseLost, fmt.Errorf("%w: noticed at the final commit", checkpoint.ErrLeaseLost)
	}
	if saved && exit.Success() && !stopping {
		a.markDone(ctx) // issue 16: before the lease goes, so no watcher launches a replacement
	}
	a.release(ctx)
	if !saved {
		// What the trainer saved last is only on this disk: an exit action
		// that stops or deletes the machine could destroy it.
		a.notifyFinalCommitFailed()
		a.scrubSkipped("the final commit failed")
		a.log.Error("final commit failed: no exit action; what the trainer saved since the last commit is only in "+a.dir,
			"last_committed", a.lastSeq.Load(), "status", ExitFinalCommitFailed)
		return ExitFinalCommitFailed, nil
	}
	a.scrub() // everything the trainer saved is in the store: before any exit action
	if g := a.gaveUp.Load(); g != nil {
		a.notifyGaveUp(*g)
		a.recordBadHost(ctx, *g)
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

// markDone writes the run's done record (runs/<run>/done.json, see
// docs/launch.md): the trainer exited 0 and everything it saved is
// committed, so baton watch launches no other host. Issue 16.
func (a *agent) markDone(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	d := launch.Done{Seq: a.lastSeq.Load(), Platform: a.desc.Platform, Host: a.desc.Host, At: time.Now().UTC()}
	if a.lease != nil {
		d.Holder = a.lease.Record().Holder
	}
	if err := launch.WriteDone(ctx, a.store, a.cfg.RunID, d); err != nil {
		a.log.Warn("could not mark the run done in the store: a baton watch may launch another host", "err", err)
		return
	}
	a.log.Info("run marked done in the store", "seq", d.Seq)
}

// setUp opens the store, takes this machine's lock and the run's lease,
// pulls the code and the data and prepares the checkpoint directory. It
// returns the checkpoint the directory holds (0: none), or the exit status
// and why it failed.
func (a *agent) setUp(ctx context.Context) (int64, int, error) {
	getenv := platform.Getenv(a.deps.Environ)
	store, err := storeurl.Open(ctx, a.cfg.Store, storeurl.Options{Driver: a.cfg.S3Driver, Getenv: getenv, MaxConns: a.cfg.Workers})
	if err != nil {
		return 0, ExitSetup, fmt.Errorf("store: %w", err)
	}
	a.store = &countingStore{Store: store, set: a.metrics.SetTransfersInFlight}
	holder := checkpoint.Holder{ID: holderID(a.desc), Host: a.desc.Host, Platform: a.desc.Platform}
	// One trainer per run on this machine: a second baton run of the same
	// checkpoint directory (two shells in one pod) is refused. The lock
	// also proves that the baton that held it last is gone, so its lease
	// is taken over at once instead of after its expiry.
	lock, gone, err := takeHostLock(a.dir, holder.ID)
	if errors.Is(err, errHeldHere) {
		return 0, ExitLeaseHeld, err
	}
	if err != nil {
		return 0, ExitSetup, err
	}
	a.hostLock = lock
	key, err := checkpoint.KeyFromSetting(a.cfg.EncryptionKey)
	if err != nil {
		return 0, ExitSetup, err
	}
	a.repo, err = checkpoint.Open(a.store, checkpoint.Options{
		Run: a.cfg.RunID, Holder: holder, Supersedes: gone, ChunkSize: int64(a.cfg.ChunkSize), Workers: a.cfg.Workers,
		LeaseDuration: a.cfg.LeaseDuration, Logger: a.log, Exclude: a.cfg.Exclude, Progress: a.progress(), Key: key,
	})
	if err != nil {
		return 0, ExitSetup, err
	}
	if g, err := a.refuseBadHost(ctx); err != nil {
		return 0, ExitSetup, err
	} else if g != nil {
		return 0, g.code, errors.New(g.reason)
	}
	if code, err := a.acquireLease(ctx); err != nil {
		return 0, code, err
	}
	if err := a.fetchCode(ctx); err != nil {
		return 0, ExitSetup, err
	}
	if err := a.fetchData(ctx); err != nil {
		return 0, ExitSetup, err
	}
	resumeFrom, err := a.prepareCheckpointDir(ctx)
	if err != nil {
		return 0, ExitSetup, err
	}
	return resumeFrom, 0, nil
}

// watchSetupSignals returns a context that a SIGTERM or SIGINT cancels
// until end is called; end returns the signal that came, or 0. From end on,
// the signals are handleSignals'.
func (a *agent) watchSetupSignals(ctx context.Context) (context.Context, func() syscall.Signal) {
	ctx, cancel := context.WithCancel(ctx)
	var got atomic.Int32
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case sig, ok := <-a.deps.Signals:
				if !ok {
					return
				}
				if s, _ := sig.(syscall.Signal); s == syscall.SIGTERM || s == syscall.SIGINT {
					got.Store(int32(s))
					a.log.Info("stop requested during set-up: cancelling it", "signal", s.String())
					cancel()
					return
				}
				a.log.Info("no trainer yet: signal ignored", "signal", sig.String())
			}
		}
	}()
	return ctx, func() syscall.Signal {
		close(stop)
		<-done
		cancel()
		return syscall.Signal(got.Load())
	}
}

// acquireLease takes the run's lease. While another host holds it, it waits
// (--lease-wait) for that lease to end, logging who holds it and until
// when, once and then every 30 s: a host that vanished stops renewing, and
// its lease expires. It gives up with ExitLeaseHeld when the holder is still
// renewing after the wait.
func (a *agent) acquireLease(ctx context.Context) (int, error) {
	wait := a.cfg.LeaseWaitDuration()
	deadline := time.Now().Add(wait)
	var logged time.Time
	for {
		lease, err := a.repo.Acquire(ctx)
		if err == nil {
			a.lease = lease
			// The run is live again: a done record of an earlier holder
			// would make baton watch stop watching it.
			if err := launch.ClearDone(ctx, a.store, a.cfg.RunID); err != nil {
				a.log.Warn("the run's done record stays: baton watch takes the run for finished", "err", err)
			}
			break
		}
		var held *checkpoint.LeaseHeldError
		if !errors.As(err, &held) {
			return ExitSetup, fmt.Errorf("lease: %w", err)
		}
		now := time.Now()
		if !now.Before(deadline) {
			return ExitLeaseHeld, err
		}
		rec := held.Record
		if logged.IsZero() || now.Sub(logged) >= 30*time.Second {
			a.log.Info("the run is held by another host: waiting for its lease to end", "holder", rec.Holder, "host", rec.Host,
				"platform", rec.Platform, "until", rec.ExpiresAt.Format(time.RFC3339), "waiting_at_most_s", deadline.Sub(now).Round(time.Second).Seconds())
			logged = now
		}
		// Look again just after the lease ends (a holder that renewed
		// moved that on), and at least every second once it should have.
		pause := max(time.Until(rec.ExpiresAt.Add(time.Second)), time.Second)
		pause = min(pause, time.Until(deadline), time.Until(logged.Add(30*time.Second)))
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ExitSetup, ctx.Err()
		case <-t.C:
		}
	}
	a.metrics.SetLease(true)
	a.lost = make(chan struct{})
	go a.renew(a.renewCtx)
	return 0, nil
}

// holderID names this process's claim on the run: the platform, the
// instance, and a random part, so that two baton runs on one instance (two
// shells in one pod) are two holders. A baton that restarts on the same
// machine proves its predecessor gone through the host lock instead.
func holderID(d platform.Description) string {
	id := d.InstanceID
	if id == "" {
		id = d.Host
	}
	if id == "" {
		id = "unknown-host" // never shared by design: Run fills Host from os.Hostname
	}
	var nonce [4]byte
	rand.Read(nonce[:])
	return d.Platform + ":" + id + "/" + hex.EncodeToString(nonce[:])
}

// renew keeps the lease alive until ctx ends (checkpoint's KeepAlive); a
// lost lease stops the trainer.
func (a *agent) renew(ctx context.Context) {
	lctx, stop := a.lease.KeepAlive(ctx, a.cfg.LeaseDuration/3)
	<-lctx.Done()
	if err := stop(); err != nil {
		a.markLost(err)
	}
}

func (a *agent) markLost(err error) {
	a.lostOnce.Do(func() {
		a.metrics.SetLease(false)
		a.log.Error("lease lost: another host took the run over; stopping the trainer, committing nothing more", "err", err)
		a.notifyLost(err)
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

// warnOtherRuns warns, when the run has no checkpoint, if the store holds
// checkpoints of other runs, naming the closest: a misspelt run id starts a
// run afresh beside the one that was meant.
func (a *agent) warnOtherRuns(ctx context.Context) {
	// It stands between a first start and the trainer: a few pages of the
	// listing at most, and never long.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	runs, err := checkpoint.Runs(ctx, a.store, 10000)
	if err != nil {
		return
	}
	runs = slices.DeleteFunc(runs, func(r string) bool { return r == a.cfg.RunID })
	if len(runs) == 0 {
		return
	}
	msg := fmt.Sprintf("run %s has no checkpoint, but the store holds checkpoints of %d other runs", a.cfg.RunID, len(runs))
	if guess := spell.Closest(a.cfg.RunID, runs); guess != "" {
		msg += "; did you mean " + guess + "?"
	}
	shown := runs[:min(len(runs), 10)]
	a.log.Warn(msg+" (check --run; the trainer starts fresh)", "runs", strings.Join(shown, ","))
}

// fetchData pulls every SRC=DST dataset, skipping what is already present.
func (a *agent) fetchData(ctx context.Context) error {
	getenv := platform.Getenv(a.deps.Environ)
	for _, m := range a.cfg.Data {
		src, err := storeurl.Open(ctx, m.Src, storeurl.Options{Driver: a.cfg.S3Driver, Getenv: getenv, MaxConns: a.cfg.Workers})
		if err != nil {
			return fmt.Errorf("data %s: %w", m, err)
		}
		e := transfer.New(transfer.Options{Workers: a.cfg.Workers, PartSize: int64(a.cfg.PartSize), Logger: a.log, Progress: a.progress()})
		st, err := e.Pull(ctx, src, m.Dst)
		if err != nil {
			return fmt.Errorf("data %s: %w", m, err)
		}
		a.log.Info("data pulled", "src", src.String(), "dst", m.Dst, "files", st.Files, "bytes", st.Bytes, "up_to_date", st.SkippedFiles)
	}
	return nil
}

// prepareCheckpointDir makes the checkpoint directory hold what the trainer
// must resume from, and returns the checkpoint that is (0: none). Whether
// the local directory is kept, committed first, replaced by the newest
// checkpoint, or set aside because both it and the store moved on is
// chooseDir's decision, from the directory's own record and contents
// (docs/run.md, "Local directory or store").
func (a *agent) prepareCheckpointDir(ctx context.Context) (int64, error) {
	// A restore killed mid-swap leaves a directory that is neither
	// checkpoint: finish or undo it before anything looks at the directory.
	if err := checkpoint.RemoveLeftovers(a.dir); err != nil {
		return 0, fmt.Errorf("removing what an interrupted restore left in or beside %s: %w", a.dir, err)
	}
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		return 0, err
	}
	digest, files, err := checkpoint.DirDigest(a.dir, a.cfg.Exclude)
	if err != nil {
		return 0, fmt.Errorf("reading the checkpoint directory: %w", err)
	}
	latest, err := a.repo.Latest(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading the newest checkpoint: %w", err)
	}
	rec := readDirRecord(a.dir)
	if rec != nil && (rec.Store != a.store.String() || rec.Run != a.cfg.RunID) {
		rec = nil // it describes another store's or another run's checkpoint
	}
	facts := dirFacts{empty: files == 0, digest: digest, rec: rec, latest: latest,
		latestDigest: func() (string, error) {
			m, err := a.repo.Manifest(ctx, latest)
			if err != nil {
				return "", err
			}
			return m.Digest(), nil
		}}
	choice, err := chooseDir(facts)
	if err != nil {
		return 0, fmt.Errorf("comparing the checkpoint directory with checkpoint %d: %w", latest, err)
	}
	recSeq := int64(0)
	if rec != nil {
		recSeq = rec.Seq
	}
	if choice != startFresh {
		a.log.Info("checkpoint directory: "+choice.String(), "dir", a.dir, "files", files, "latest", latest, "directory_holds", recSeq)
	}
	switch choice {
	case startFresh:
		if latest == 0 {
			a.warnOtherRuns(ctx)
		}
		a.log.Info("no checkpoint yet: the trainer starts fresh", "dir", a.dir)
		return 0, nil
	case keepLocal:
		a.lastSeq.Store(latest)
		return latest, nil
	case commitLocal:
		base := max(recSeq, latest)
		a.lastSeq.Store(base)
		a.log.Warn("the checkpoint directory holds work the store lacks (saved after the last commit): keeping it and committing it before the trainer starts",
			"dir", a.dir, "based_on", recSeq, "latest", latest)
		if err := a.commitNow(ctx, "local work found at start"); err != nil && !errors.Is(err, checkpoint.ErrEmpty) {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			a.log.Warn("could not commit the local work yet; the trainer resumes from it and the next commit tries again", "err", err)
		}
		return a.lastSeq.Load(), nil
	case forkAside:
		aside, err := setAside(a.dir, recSeq, time.Now())
		if err != nil {
			return 0, fmt.Errorf("setting the local checkpoint directory aside before restoring checkpoint %d: %w", latest, err)
		}
		a.metrics.ForkSetAside()
		a.log.Error("FORK: the checkpoint directory holds work that is not in the store, and the run moved on elsewhere since; "+
			"the local work was moved aside, not deleted, and the newest checkpoint is restored. "+
			"To continue from the local work instead, stop this run and copy it back: cp -a "+aside+"/. "+a.dir+"/",
			"set_aside", aside, "based_on", recSeq, "latest", latest)
	}
	return a.restoreNewest(ctx, latest)
}

// restoreNewest restores checkpoint latest, or, if it is damaged (a chunk
// missing or torn in the store), the newest older checkpoint that restores,
// and records it in the directory. It fails only if none restores.
func (a *agent) restoreNewest(ctx context.Context, latest int64) (int64, error) {
	candidates := []int64{latest}
	var firstErr error
	for i := 0; i < len(candidates); i++ {
		seq := candidates[i]
		m, err := a.repo.Restore(ctx, seq, a.dir)
		if err == nil {
			if i > 0 {
				a.log.Warn("restored an older checkpoint: the newer ones are damaged in the store (baton checkpoint verify --all tells which chunks)",
					"seq", m.Seq, "newest", latest, "err", firstErr)
			}
			a.log.Info("checkpoint restored", "seq", m.Seq, "files", len(m.Files), "bytes", m.Size, "from_host", m.Host, "from_platform", m.Platform)
			a.lastSeq.Store(m.Seq)
			if err := writeDirRecord(a.dir, dirRecord{Store: a.store.String(), Run: a.cfg.RunID, Seq: m.Seq, Digest: m.Digest()}); err != nil {
				a.log.Warn("the restored directory is not recorded; a restart will compare its contents instead", "err", err)
			}
			return m.Seq, nil
		}
		if !errors.Is(err, checkpoint.ErrDamaged) {
			return 0, err
		}
		a.metrics.RestoreFellBack()
		a.log.Warn("checkpoint cannot be restored: it is damaged in the store; trying the one before", "seq", seq, "err", err)
		if firstErr == nil {
			firstErr = err
			older, lerr := a.repo.List(ctx)
			if lerr != nil {
				return 0, errors.Join(err, lerr)
			}
			for j := len(older) - 1; j >= 0; j-- {
				if older[j].Seq < latest {
					candidates = append(candidates, older[j].Seq)
				}
			}
		}
	}
	return 0, fmt.Errorf("no checkpoint of run %s restores (%d tried): %w", a.cfg.RunID, len(candidates), firstErr)
}

// supervise runs the trainer with restarts, the commit loop and the
// control socket beside it.
func (a *agent) supervise(ctx context.Context, command []string, resumeFrom int64) (supervise.Exit, error) {
	if os.Getpid() != 1 {
		if err := supervise.BecomeSubreaper(); err != nil {
			a.log.Warn("cannot become a child subreaper; orphans of the trainer are left to PID 1", "err", err)
		}
	}
	// The trainer is forked on a thread kept at baton's starting priority;
	// every other thread is lowered (agent/priority.go).
	kept := priority.NewThread()
	defer kept.Close()
	reaper := supervise.NewReaper(supervise.ReaperOptions{Logger: a.log, Spawn: kept.Do})
	defer reaper.Close()
	a.lowerPriority(kept)
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
	base, withheld := trainerEnv(a.deps.Environ, a.cfg.PassEnv)
	if len(withheld) > 0 {
		a.log.Info("kept from the trainer's environment (--pass-env passes one on)", "vars", strings.Join(withheld, ","))
	}
	exit, err := sup.RunWithRestarts(ctx, policy, func(ctx context.Context, attempt int) (supervise.Spec, error) {
		a.attemptStart.Store(time.Now().UnixNano())
		a.metrics.TrainerStarted(time.Now())
		env := append(slices.Clip(base),
			"BATON_RUN_ID="+a.cfg.RunID,
			"BATON_CHECKPOINT_DIR="+a.dir,
			"BATON_RESUME="+boolString(a.hasFiles()),
			"BATON_RESUME_FROM="+strconv.FormatInt(a.lastSeq.Load(), 10),
			"BATON_ATTEMPT="+strconv.Itoa(attempt),
			"BATON_PLATFORM="+a.desc.Platform,
			"BATON_AGENT_SOCKET="+sock,
		)
		return supervise.Spec{Path: path, Args: command[1:], Env: env, Dir: dir,
			Stdout: a.tee(a.deps.Stdout, a.segOut), Stderr: a.tee(a.deps.Stderr, a.segErr), Grace: a.cfg.StopBudget(a.desc.Platform).Grace}, nil
	})
	stopLoop()
	<-loopDone
	if n := reaper.Orphans(); n > 0 {
		a.log.Info("reaped orphans of the trainer", "orphans_reaped", n, "pid1", os.Getpid() == 1)
	}
	return exit, err
}

// hasFiles reports whether the checkpoint directory holds a file the
// trainer could resume from (what a commit would take).
func (a *agent) hasFiles() bool {
	_, n, err := checkpoint.DirDigest(a.dir, a.cfg.Exclude)
	return err == nil && n > 0
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
	a.segOut, a.segErr = redact.NewWriter(f, a.deps.Environ), redact.NewWriter(f, a.deps.Environ)
}

// tee copies w's writes into the log segment as well, through seg, which
// removes secrets line by line (the terminal gets them unchanged).
func (a *agent) tee(w io.Writer, seg *redact.Writer) io.Writer {
	if seg != nil {
		w = io.MultiWriter(w, seg)
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
		err = a.repo.PutLog(ctx, a.logSegment, storage.NewPayload(a.logFile, 0, fi.Size()))
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
	a.segOut.Flush() // a last line without its newline
	a.segErr.Flush()
	a.uploadLog(ctx)
	a.logFile.Close()
	os.Remove(a.logFile.Name())
}
