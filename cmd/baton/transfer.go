package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/internal/progress"
	"github.com/batonrun/baton/internal/units"
	"github.com/batonrun/baton/sync/transfer"
)

// transferDo runs op with a transfer engine that shows its progress, then
// prints a summary line.
func transferDo(ctx context.Context, e env, f *config.Transfer, verb string, op func(context.Context, *transfer.Engine) (transfer.Stats, error)) error {
	log := slog.New(newLogHandler(e.stderr, nil))
	engine := transfer.New(transfer.Options{Workers: f.Workers, PartSize: int64(f.PartSize), Progress: e.progress(f.Progress, log), Logger: log, AllowEmpty: f.AllowEmpty})
	start := time.Now()
	stats, err := op(ctx, engine)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	fmt.Fprintf(e.stdout, "%s %s (%s) in %s, %s/s; %s (%s) already up to date\n",
		verb, units.Plural(stats.Files, "file"), units.Bytes(stats.Bytes), elapsed.Round(time.Millisecond),
		units.Bytes(int64(float64(stats.Bytes)/max(elapsed.Seconds(), 1e-3))),
		units.Plural(stats.SkippedFiles, "file"), units.Bytes(stats.SkippedBytes))
	return nil
}

// progress is the display of transfers that --progress asks for: auto is
// a bar on a terminal and log lines otherwise (a first line after a second,
// then one every 10s, and a last one), none is nothing.
func (e env) progress(mode string, log *slog.Logger) *progress.Reporter {
	switch {
	case mode == "none":
		return nil
	case mode == "bar" || mode == "auto" && isTerminal(e.stderr):
		return &progress.Reporter{Bar: e.stderr}
	}
	return &progress.Reporter{Log: log}
}

// transferArgs reads the settings and the two operands of pull or push.
func transferArgs(e env, name, operands string, f *config.Transfer, args []string) (first, second string, err error) {
	ops, err := e.settings(name, f, args)
	if err != nil {
		return "", "", err
	}
	if err := wantOperands(ops, 2, 2, strings.Replace(operands, " ", " and ", 1)); err != nil {
		return "", "", err
	}
	return ops[0], ops[1], nil
}

// pullCmd copies a store into a directory.
type pullCmd struct{ env env }

func (c *pullCmd) Run(ctx context.Context, args []string) error {
	var f config.Transfer
	src, dir, err := transferArgs(c.env, "pull", "SRC DIR", &f, args)
	if err != nil {
		return err
	}
	store, err := c.env.openStore(ctx, src, f.S3Driver, f.Workers)
	if err != nil {
		return err
	}
	return transferDo(ctx, c.env, &f, "pulled", func(ctx context.Context, e *transfer.Engine) (transfer.Stats, error) {
		return e.Pull(ctx, store, dir)
	})
}

// pushCmd copies a directory into a store.
type pushCmd struct{ env env }

func (c *pushCmd) Run(ctx context.Context, args []string) error {
	var f config.Transfer
	dir, dst, err := transferArgs(c.env, "push", "DIR DST", &f, args)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usagef("%s is not a directory", dir)
	}
	store, err := c.env.openStore(ctx, dst, f.S3Driver, f.Workers)
	if err != nil {
		return err
	}
	return transferDo(ctx, c.env, &f, "pushed", func(ctx context.Context, e *transfer.Engine) (transfer.Stats, error) {
		return e.Push(ctx, dir, store)
	})
}
