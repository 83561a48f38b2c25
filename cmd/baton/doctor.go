package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/agent/doctor"
	"github.com/batonrun/baton/agent/telemetry/gpu"
	"github.com/batonrun/baton/sync/storage"
	"github.com/batonrun/baton/sync/storeurl"
)

const doctorSynopsis = "doctor [--json] [--require-gpu] [--timeout D] [RUN FLAGS] [-- CMD ARGS...]"

const doctorUsage = `
baton doctor shows what baton sees here: the platform, the configuration as
"baton run" would read it, the GPUs and their health (NVML), the free space
of the checkpoint and workspace disks, and whether the store is reachable and
writable (a real round trip under .baton-doctor/ in the store, deleted after).
Each line is ok, warn or fail with its reason; docs/doctor.md explains them.

It takes every flag of baton run (baton run -h), read as baton run reads them,
so "baton doctor" can stand in for "baton run" in a command line: --store or
BATON_STORE names the store to check, --min-free-disk the free space below
which a disk warns.

Exit status: 0 when nothing required is broken, 1 when a required check
fails (the store is set but not writable, the configuration would stop baton
run, a GPU is unhealthy while baton run's --gpu-check is on, or --require-gpu
and no healthy GPU), 2 for bad usage. No NVIDIA driver is a warning unless
--require-gpu.
`

// doctorCmd is "baton doctor": what baton sees on this host.
type doctorCmd struct{ env env }

func (c *doctorCmd) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("doctor", c.env.stderr, doctorSynopsis)
	asJSON := fs.Bool("json", false, "print the report as JSON (schema in docs/doctor.md)")
	requireGPU := fs.Bool("require-gpu", false, "fail unless NVML works and sees a GPU, and every GPU is healthy")
	timeout := fs.Duration("timeout", doctor.DefaultTimeout, "bound on the whole check; each check has a shorter deadline of its own")
	defaultUsage := fs.Usage
	fs.Usage = func() {
		defaultUsage()
		fmt.Fprint(c.env.stderr, doctorUsage)
	}
	own, runArgs := splitDoctorArgs(fs, args)
	if err := parse(fs, own, c.env.getenv); err != nil {
		return err
	}
	if *timeout <= 0 {
		return usagef("--timeout=%s: want a positive duration", *timeout)
	}
	cfg, _, problem, err := doctor.LoadConfig(runArgs, c.env.getenv, os.ReadFile)
	if errors.Is(err, flag.ErrHelp) {
		fs.Usage()
		return usageError{err}
	}
	if err != nil {
		return usageError{err}
	}
	wd, _ := os.Getwd()
	opts := doctor.Options{
		Version:       version,
		Host:          hostname(),
		Environ:       c.env.environ,
		Root:          os.DirFS("/"),
		WorkDir:       wd,
		Config:        cfg,
		ConfigProblem: problem,
		OpenStore: func(ctx context.Context, url string) (storage.Store, error) {
			return storeurl.Open(ctx, url, storeurl.Options{Driver: cfg.S3Driver, Getenv: c.env.getenv, MaxConns: 4})
		},
		RequireGPU: *requireGPU,
		OpenGPUs: func(context.Context) (doctor.GPUs, error) {
			s, err := gpu.Open(gpu.New(), gpu.Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				return nil, err // not a nil *Sampler inside the interface
			}
			return s, nil
		},
		Redact:  func(s string) string { return redactEnv(s, c.env.environ) },
		Timeout: *timeout,
	}
	report := doctor.Run(ctx, opts)
	if *asJSON {
		err = report.WriteJSON(c.env.stdout)
	} else {
		err = report.WriteText(c.env.stdout, isTerminal(c.env.stdout) && c.env.getenv("NO_COLOR") == "")
	}
	if err != nil {
		return err
	}
	if report.ExitCode != 0 {
		return exitCode(report.ExitCode) // the report said why
	}
	return nil
}

// splitDoctorArgs splits args into doctor's own flags (those defined in fs,
// and -h) and the rest, which are baton run's flags and the trainer's
// command. A flag's value in the next argument goes with its flag.
func splitDoctorArgs(fs *flag.FlagSet, args []string) (own, rest []string) {
	runBool := map[string]bool{}
	for _, s := range config.Settings() {
		runBool[s.Flag] = s.Type == "boolean"
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || a == "-" || !strings.HasPrefix(a, "-") {
			return own, append(rest, args[i:]...)
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		takesNext := false
		if f := fs.Lookup(name); f != nil || name == "h" || name == "help" {
			own = append(own, a)
			if f != nil && !hasValue && !isBoolFlag(f) {
				takesNext = true
			}
			if takesNext && i+1 < len(args) {
				i++
				own = append(own, args[i])
			}
			continue
		}
		rest = append(rest, a)
		if isBool, known := runBool[name]; known && !isBool && !hasValue && i+1 < len(args) {
			i++
			rest = append(rest, args[i])
		}
	}
	return own, rest
}

// isBoolFlag reports whether f takes no value of its own, as package flag
// decides it.
func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
