package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/batonrun/baton/internal/units"
	"github.com/batonrun/baton/sync/storage"
	"github.com/batonrun/baton/sync/storeurl"
	"github.com/batonrun/baton/sync/transfer"
)

// storeFlags are the flags of every command that opens a store.
type storeFlags struct {
	workers int
	driver  string
}

func (f *storeFlags) register(fs *flag.FlagSet, workers int) {
	fs.IntVar(&f.workers, "workers", workers, "requests in flight at once")
	fs.StringVar(&f.driver, "s3-driver", storeurl.DefaultDriver, "S3 client library: aws or minio (the URL's driver= wins)")
}

func (f *storeFlags) validate() error {
	switch {
	case f.workers < 1 || f.workers > 1024:
		return usagef("--workers=%d: want 1 to 1024", f.workers)
	case f.driver != storeurl.DriverAWS && f.driver != storeurl.DriverMinio:
		return usagef("--s3-driver=%q: want aws or minio", f.driver)
	}
	return nil
}

// open opens the store named by raw, mapping a bad URL to a usage error.
func (f *storeFlags) open(ctx context.Context, e env, raw string) (storage.Store, error) {
	s, err := storeurl.Open(ctx, raw, storeurl.Options{Driver: f.driver, Getenv: e.getenv, MaxConns: f.workers})
	if errors.Is(err, storeurl.ErrBadURL) {
		return nil, usageError{err}
	}
	return s, err
}

// transferFlags are the flags that pull and push share.
type transferFlags struct {
	storeFlags
	partSize byteSize
	progress string
}

func (f *transferFlags) register(fs *flag.FlagSet) {
	f.partSize = transfer.DefaultPartSize
	f.storeFlags.register(fs, transfer.DefaultWorkers)
	fs.Var(&f.partSize, "part-size", "size of one part of a big file (at least 5MiB)")
	fs.StringVar(&f.progress, "progress", "auto", "progress display: auto (a bar on a terminal, else a log line every 5s), bar, log or none")
}

func (f *transferFlags) validate() error {
	if err := f.storeFlags.validate(); err != nil {
		return err
	}
	if f.partSize < storage.MinPartSize {
		return usagef("--part-size=%d: want at least 5MiB", f.partSize)
	}
	switch f.progress {
	case "auto", "bar", "log", "none":
		return nil
	}
	return usagef("--progress=%q: want auto, bar, log or none", f.progress)
}

// do runs op with a transfer engine and a progress display, then prints a
// summary line.
func (f *transferFlags) do(ctx context.Context, e env, verb string, op func(context.Context, *transfer.Engine) (transfer.Stats, error)) error {
	log := slog.New(newLogHandler(e.stderr, nil))
	progress := &transfer.Progress{}
	engine := transfer.New(transfer.Options{Workers: f.workers, PartSize: int64(f.partSize), Progress: progress, Logger: log})

	mode := f.progress
	if mode == "auto" {
		mode = "log"
		if isTerminal(e.stderr) {
			mode = "bar"
		}
	}
	reportCtx, stopReport := context.WithCancel(ctx)
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		if mode == "none" {
			<-reportCtx.Done()
			return
		}
		progress.Report(reportCtx, e.stderr, mode == "bar", log, 5*time.Second)
	}()
	start := time.Now()
	stats, err := op(ctx, engine)
	stopReport()
	<-reported
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	fmt.Fprintf(e.stdout, "%s %d files (%s) in %s, %s/s; %d files (%s) already up to date\n",
		verb, stats.Files, units.Bytes(stats.Bytes), elapsed.Round(time.Millisecond),
		units.Bytes(int64(float64(stats.Bytes)/max(elapsed.Seconds(), 1e-3))),
		stats.SkippedFiles, units.Bytes(stats.SkippedBytes))
	return nil
}

// parseArgs parses a transfer command's flags and its two operands.
func (f *transferFlags) parseArgs(e env, name, operands string, args []string) (first, second string, err error) {
	fs := newFlagSet(name, e.stderr, name+" [flags] "+operands)
	f.register(fs)
	if err := parse(fs, args, e.getenv); err != nil {
		return "", "", err
	}
	if fs.NArg() != 2 {
		return "", "", usagef("want %s, got %d arguments", strings.Replace(operands, " ", " and ", 1), fs.NArg())
	}
	if err := f.validate(); err != nil {
		return "", "", err
	}
	return fs.Arg(0), fs.Arg(1), nil
}

// pullCmd copies a store into a directory.
type pullCmd struct {
	env   env
	flags transferFlags
}

func (c *pullCmd) Run(ctx context.Context, args []string) error {
	src, dir, err := c.flags.parseArgs(c.env, "pull", "SRC DIR", args)
	if err != nil {
		return err
	}
	store, err := c.flags.open(ctx, c.env, src)
	if err != nil {
		return err
	}
	return c.flags.do(ctx, c.env, "pulled", func(ctx context.Context, e *transfer.Engine) (transfer.Stats, error) {
		return e.Pull(ctx, store, dir)
	})
}

// pushCmd copies a directory into a store.
type pushCmd struct {
	env   env
	flags transferFlags
}

func (c *pushCmd) Run(ctx context.Context, args []string) error {
	dir, dst, err := c.flags.parseArgs(c.env, "push", "DIR DST", args)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usagef("%s is not a directory", dir)
	}
	store, err := c.flags.open(ctx, c.env, dst)
	if err != nil {
		return err
	}
	return c.flags.do(ctx, c.env, "pushed", func(ctx context.Context, e *transfer.Engine) (transfer.Stats, error) {
		return e.Push(ctx, dir, store)
	})
}
