package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/agent/launch"
	"github.com/batonrun/baton/agent/launch/local"
	"github.com/batonrun/baton/agent/launch/runpod"
	"github.com/batonrun/baton/agent/launch/vast"
	"github.com/batonrun/baton/internal/redact"
	"github.com/batonrun/baton/sync/storage"
)

// launchCmd is "baton launch": start one host of the run now, on the
// cheapest offer that fits its launch spec (docs/launch.md).
type launchCmd struct{ env env }

func (c *launchCmd) Run(ctx context.Context, args []string) error {
	var s config.Launch
	l, err := c.env.loadLauncher(ctx, "launch", args, &s, &s.Config, &s.LaunchSpec)
	if err != nil {
		return err
	}
	if s.DryRun {
		offer, _, err := l.Choose(ctx, l.Request(nil))
		if err != nil {
			return err
		}
		host, err := l.Host(launch.Label(l.Run, 0, 0))
		if err != nil {
			return usageError{err}
		}
		names := slices.Sorted(maps.Keys(host.Env))
		fmt.Fprintf(c.env.stdout, "offer: %s\nhost:  baton run -- %s\nenv:   %s (values not shown)\n", offer, launch.ShellJoin(host.Args), strings.Join(names, " "))
		return nil
	}
	lease, err := launch.ReadLease(ctx, l.Store, l.Run)
	if err != nil {
		return err
	}
	var epoch int64
	if lease != nil {
		epoch = lease.Epoch
		if time.Now().Before(lease.ExpiresAt) {
			l.Log.Warn("the run is held by a live host: the new one waits for its lease (--lease-wait), then exits 75",
				"holder", lease.Holder, "until", lease.ExpiresAt)
		}
	}
	claims, err := launch.Claims(ctx, l.Store, l.Run)
	if err != nil {
		return err
	}
	attempt := 1
	for _, cl := range claims {
		if cl.Epoch == epoch {
			attempt = cl.Attempt + 1
		}
	}
	claim, err := l.Claim(ctx, epoch, attempt)
	if err != nil {
		return err
	}
	m, err := l.Launch(ctx, claim, nil, -1)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.env.stdout, "launched %s: %s %s, %dx %s at $%.3f/h\n", claim.Label, m.Provider, m.ID, claim.GPUCount, orDash(claim.GPU), claim.PricePerHour)
	return nil
}

// settingsNoOperands loads the settings of the command name into dst, as
// settings does, and refuses operands: baton launch, watch and status take
// none.
func (e env) settingsNoOperands(name string, dst any, args []string) error {
	operands, err := e.settings(name, dst, args)
	if err != nil {
		return err
	}
	return wantOperands(operands, 0, 0, "")
}

// loadLauncher loads the settings of baton launch or baton watch (name)
// into s, whose run settings and launch spec cfg and spec point into, and
// wires the launcher they describe (newLauncher).
func (e env) loadLauncher(ctx context.Context, name string, args []string, s any, cfg *config.Config, spec *config.LaunchSpec) (*launch.Launcher, error) {
	if err := e.settingsNoOperands(name, s, args); err != nil {
		return nil, err
	}
	return e.newLauncher(ctx, cfg, *spec, name)
}

// newLauncher wires the launcher of the run that cfg and spec describe:
// its store, its providers in the spec's order, and a log whose lines
// never show a secret of the environment.
func (e env) newLauncher(ctx context.Context, cfg *config.Config, spec config.LaunchSpec, name string) (*launch.Launcher, error) {
	log := slog.New(redact.Handler(logHandler(cfg.LogFormat, e), e.environ)).With("cmd", name, "run", cfg.RunID)
	store, err := e.openStore(ctx, cfg.Store, cfg.S3Driver, cfg.Workers)
	if err != nil {
		return nil, err
	}
	// A watcher runs for days: every request it makes is retried, as the
	// checkpoint repository's are.
	l := &launch.Launcher{Store: storage.WithRetry(store, storage.DefaultRetry()), Run: cfg.RunID, Spec: spec, Config: cfg, Getenv: e.getenv, Now: time.Now, Log: log, ID: launch.NewID()}
	client := &http.Client{Timeout: time.Minute}
	for _, p := range spec.Provider {
		switch p {
		case "local":
			lp, err := local.New(spec.LocalDir, "", e.environ)
			if err != nil {
				return nil, err
			}
			l.Providers = append(l.Providers, lp)
		case "runpod":
			rp, err := runpod.New(runpod.Options{APIOptions: launch.APIOptions{BaseURL: cfg.RunPodAPIURL, Key: e.getenv("RUNPOD_API_KEY"), Client: client}, Cloud: spec.RunPodCloud})
			if err != nil {
				return nil, usageError{err}
			}
			l.Providers = append(l.Providers, rp)
		case "vast":
			vp, err := vast.New(vast.Options{APIOptions: launch.APIOptions{BaseURL: cfg.VastAPIURL, Key: e.getenv("VAST_API_KEY"), Client: client},
				Verified: spec.VastVerified, MinReliability: float64(spec.VastMinReliability), Interruptible: spec.VastInterruptible})
			if err != nil {
				return nil, usageError{err}
			}
			l.Providers = append(l.Providers, vp)
		}
	}
	if _, err := l.Host("check"); err != nil {
		return nil, usageError{err}
	}
	return l, nil
}
