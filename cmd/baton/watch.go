package main

import (
	"context"
	"fmt"
	"time"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/agent/launch"
	"github.com/batonrun/baton/agent/notify"
)

// watchCmd is "baton watch": keep the run alive until it is done,
// launching a host whenever its lease lapses (docs/launch.md).
type watchCmd struct{ env env }

func (c *watchCmd) Run(ctx context.Context, args []string) error {
	var s config.Watch
	l, err := c.env.loadLauncher(ctx, "watch", args, &s, &s.Config, &s.LaunchSpec)
	if err != nil {
		return err
	}
	w := &launch.Watcher{Launcher: l, BootTimeout: s.BootTimeout, Interval: s.WatchInterval, MaxFailures: s.MaxFailures,
		Budget: float64(s.Budget), OnSuperseded: s.OnSuperseded, Once: s.Once}
	if len(s.Notify) > 0 {
		n := notify.New(s.Notify, notify.Options{Logger: l.Log, Environ: c.env.environ, UserAgent: "baton/" + version})
		defer func() {
			closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			n.Close(closeCtx)
		}()
		w.Notify = func(msg string) {
			n.Send(notify.Event{Event: "watch_gave_up", Run: s.RunID, Message: msg})
		}
	}
	l.Log.Info("watching the run", "providers", s.Provider, "interval", s.WatchInterval.String(), "boot_timeout", s.BootTimeout.String())
	r, err := w.Run(ctx)
	fmt.Fprintf(c.env.stdout, "run %s: %s; launches cost $%.2f so far\n", s.RunID, orWord(r.Message, r.Outcome.String()), r.Spent)
	return err
}

// orWord is s, or word where s is empty.
func orWord(s, word string) string {
	if s == "" {
		return word
	}
	return s
}
