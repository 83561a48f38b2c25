package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

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
	f, _, problem, err := doctor.LoadConfig(args, c.env.getenv, os.ReadFile)
	if errors.Is(err, config.ErrHelp) {
		fmt.Fprintf(c.env.stdout, "Usage: baton %s\n\nFlags (settings: docs/config.md):\n%s%s", doctorSynopsis, config.UsageOf(&f), doctorUsage)
		return errHelpShown
	}
	if err != nil {
		return usageError{err}
	}
	cfg := f.Config
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
		RequireGPU: f.RequireGPU,
		OpenGPUs: func(context.Context) (doctor.GPUs, error) {
			s, err := gpu.Open(gpu.New(), gpu.Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				return nil, err // not a nil *Sampler inside the interface
			}
			return s, nil
		},
		Redact:  func(s string) string { return redactEnv(s, c.env.environ) },
		Timeout: f.Timeout,
	}
	report := doctor.Run(ctx, opts)
	if f.JSON {
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
