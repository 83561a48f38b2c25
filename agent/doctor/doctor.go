// Package doctor checks what baton sees on this host, for "baton doctor": the
// platform and its facts, the configuration as "baton run" would read it,
// the GPUs and their health, the free space of the checkpoint and workspace
// disks, and whether the store is reachable and writable (a real round trip,
// including a create-only write that must be refused the second time).
//
// Each check ends with a status (ok, warn or fail) and a one-line reason.
// A failed check that is required makes the whole report fail (exit status 1
// of the command); everything else only informs. Every check has a deadline,
// so a report is ready in about half a minute even when the store's endpoint
// does not answer.
//
// The package reaches the machine only through Options (the environment, a
// file system, the GPUs, a disk meter, a store opener), so tests run every
// check without the CLI, a GPU or a cloud account.
package doctor

import (
	"context"
	"io/fs"
	"math"
	"sync"
	"time"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/agent/platform"
	"github.com/batonrun/baton/sync/storage"
)

// Schema is the version of the JSON form of Report. It changes only when a
// field is removed or changes meaning; new fields may appear without it.
const Schema = 1

// Status is the outcome of one check.
type Status string

// The statuses, from best to worst.
const (
	// OK: the check found what baton needs.
	OK Status = "ok"
	// Warn: something is missing or off, but baton can run.
	Warn Status = "warn"
	// Fail: the check found something broken.
	Fail Status = "fail"
)

// rank orders statuses from best to worst.
func (s Status) rank() int {
	switch s {
	case OK:
		return 0
	case Warn:
		return 1
	}
	return 2
}

// Check is the outcome of one check.
type Check struct {
	// Name identifies the check: "platform", "config", "gpu", "gpu.N" (one
	// per device, N its NVML index), "disk.checkpoint", "disk.workspace",
	// "store".
	Name string `json:"name"`
	// Status is ok, warn or fail.
	Status Status `json:"status"`
	// Required says whether a failure of this check makes the report fail.
	Required bool `json:"required"`
	// Reason is one line that says what the check found.
	Reason string `json:"reason"`
	// Hint says what to do about a warning or a failure; empty when ok.
	Hint string `json:"hint,omitempty"`
	// DurationMS is how long the check took, in milliseconds.
	DurationMS float64 `json:"duration_ms"`
}

// Report is everything doctor found. Its JSON form is documented in
// docs/doctor.md.
type Report struct {
	// Schema is the version of this format (see Schema).
	Schema int `json:"schema"`
	// Version is baton's version.
	Version string `json:"version"`
	// Time is when the checks started.
	Time time.Time `json:"time"`
	// Status is the worst status of all checks.
	Status Status `json:"status"`
	// ExitCode is 1 when a required check failed, else 0.
	ExitCode int `json:"exit_code"`
	// Checks are the outcomes, in the order they are printed.
	Checks []Check `json:"checks"`
	// Platform is the host as platform.Detect describes it.
	Platform platform.Description `json:"platform"`
	// Config is the configuration as "baton run" would read it.
	Config ConfigFacts `json:"config"`
	// GPU is what NVML reported; nil when it could not be opened.
	GPU *GPUFacts `json:"gpu"`
	// Disks are the disks of the checkpoint directory and the workspace.
	Disks []DiskFacts `json:"disks"`
	// Store is the round trip through the store; nil when no store is set.
	Store *StoreFacts `json:"store"`
}

// Failed returns the required checks that failed.
func (r Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Required && c.Status == Fail {
			out = append(out, c)
		}
	}
	return out
}

// Options are what Run checks and how. Only Config is needed; every other
// field has a default or turns its check into a warning.
type Options struct {
	// Version is baton's version, for the report.
	Version string
	// Host names this machine in the store's probe key; empty: "unknown".
	Host string
	// Environ is the process environment as os.Environ returns it, read by
	// platform.Detect.
	Environ []string
	// Root is the root of the file system, for platform.Detect's marker
	// files (os.DirFS("/") in production; nil: none).
	Root fs.FS
	// WorkDir is the working directory: relative directories of the
	// configuration are taken from it, and it is the workspace when the
	// platform names no persistent directory.
	WorkDir string

	// Config is the configuration as LoadConfig read it.
	Config config.Config
	// ConfigProblem is the first problem LoadConfig found, or nil.
	ConfigProblem error

	// RequireGPU makes the GPU checks required: no driver, no GPU or an
	// unhealthy GPU fails the report. Without it an unhealthy GPU still
	// fails it while baton run's --gpu-check (Config.GPUCheck) is on.
	RequireGPU bool
	// OpenGPUs opens NVML (gpu.Open in production). It returns an error
	// wrapping gpu.ErrNoDriver when the machine has no NVIDIA driver; nil
	// is taken as no driver.
	OpenGPUs func(ctx context.Context) (GPUs, error)

	// Disk measures the file system that holds a directory; nil: HostDisk.
	Disk DiskMeter

	// OpenStore opens the store at the configured URL; nil: the store is
	// not checked.
	OpenStore func(ctx context.Context, url string) (storage.Store, error)
	// StoreRetry is the retry policy of the store's round trip; the zero
	// value means DefaultStoreRetry.
	StoreRetry storage.Retry

	// Redact removes secrets from every text the report carries; nil: none.
	Redact func(string) string
	// Timeout bounds the whole run; 0 means DefaultTimeout. Each check has
	// a shorter deadline of its own (see the Timeout constants).
	Timeout time.Duration
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Deadlines. The slow checks run at the same time, so a report takes about
// as long as the slowest of them.
const (
	// DefaultTimeout bounds a whole run.
	DefaultTimeout = 30 * time.Second
	// GPUTimeout bounds opening NVML and one sample of every GPU.
	GPUTimeout = 10 * time.Second
	// DiskTimeout bounds measuring each disk.
	DiskTimeout = 5 * time.Second
	// StoreTimeout bounds the store's whole round trip.
	StoreTimeout = 20 * time.Second
	// StoreStepTimeout bounds one step of the round trip, retries included.
	StoreStepTimeout = 5 * time.Second
)

// Run runs every check and returns the report. It never fails: what goes
// wrong is what the report is about.
func Run(ctx context.Context, o Options) Report {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Redact == nil {
		o.Redact = func(s string) string { return s }
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	r := Report{Schema: Schema, Version: o.Version, Time: o.Now().UTC()}
	desc := platform.Detect(o.Environ, o.Root)
	r.Platform = desc
	platformCheck := timed(o.Now, func() Check { return checkPlatform(desc) })
	var configCheck Check
	configCheck, r.Config = checkConfig(o)

	var (
		wg         sync.WaitGroup
		gpuChecks  []Check
		diskChecks []Check
		storeCheck Check
	)
	wg.Go(func() {
		start := o.Now()
		gpuChecks, r.GPU = checkGPUs(ctx, o, desc)
		gpuChecks[0].DurationMS = millis(o.Now().Sub(start))
	})
	wg.Go(func() { diskChecks, r.Disks = checkDisks(ctx, o, desc) })
	wg.Go(func() {
		start := o.Now()
		storeCheck, r.Store = checkStore(ctx, o)
		storeCheck.DurationMS = millis(o.Now().Sub(start))
	})
	wg.Wait()

	r.Checks = append(r.Checks, platformCheck, configCheck)
	r.Checks = append(r.Checks, gpuChecks...)
	r.Checks = append(r.Checks, diskChecks...)
	r.Checks = append(r.Checks, storeCheck)
	redactFacts(&r, o.Redact)
	r.Status = OK
	for i := range r.Checks {
		c := &r.Checks[i]
		c.Reason, c.Hint = o.Redact(c.Reason), o.Redact(c.Hint)
		if c.Status.rank() > r.Status.rank() {
			r.Status = c.Status
		}
	}
	if len(r.Failed()) > 0 {
		r.ExitCode = 1
	}
	return r
}

// redactFacts removes secrets from the texts of the facts that come from
// outside baton: the store's errors, the settings' values, the disks' errors.
func redactFacts(r *Report, redact func(string) string) {
	if r.Store != nil {
		for i := range r.Store.Steps {
			r.Store.Steps[i].Error = redact(r.Store.Steps[i].Error)
		}
	}
	for i := range r.Config.Settings {
		r.Config.Settings[i].Value = redact(r.Config.Settings[i].Value)
	}
	for i := range r.Disks {
		r.Disks[i].Error = redact(r.Disks[i].Error)
	}
}

// timed runs f and sets the duration of the check it returns.
func timed(now func() time.Time, f func() Check) Check {
	start := now()
	c := f()
	c.DurationMS = millis(now().Sub(start))
	return c
}

// millis is d in milliseconds, to a tenth.
func millis(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Millisecond)*10) / 10
}
