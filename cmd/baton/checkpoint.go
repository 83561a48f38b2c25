package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/batonrun/baton/agent"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/batonrun/baton/agent/telemetry/record"
	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/units"
	"github.com/batonrun/baton/sync/storage"
	"github.com/batonrun/baton/sync/transfer"
)

const checkpointUsage = `Usage: baton checkpoint COMMAND [flags] [ARGS]

The checkpoints of one run in a store (docs/checkpoint-format.md).

Commands:
  commit [flags] DIR            commit DIR as the run's next checkpoint
  ls [--json]                   list the run's checkpoints, oldest first
  show [--json] [SEQ]           one checkpoint's manifest (the latest by default)
  restore [--seq N] [--force] DIR
                                restore the latest checkpoint (or N) into DIR
  gc [--keep K] [--grace D]     keep the newest K checkpoints of the run, then
                                delete the store's unreferenced chunks older than D
  pin SEQ, unpin SEQ            keep checkpoint SEQ through retention, or stop
  verify [--seq N|--all] [--deep] [--repair DIR]
                                check that every chunk of the latest checkpoint
                                (or N, or all) is in the store, whole (--deep:
                                downloaded and hashed); exit 1 on damage; --repair
                                uploads damaged chunks again from a local copy
  hosts [--forget ID|--forget-all] [--json]
                                the machines the run gave up for bad health
                                (baton run refuses them), or forget them

Every command takes --store URL (BATON_STORE) and --run ID (BATON_RUN_ID; gc
needs it only with --keep). Run "baton checkpoint COMMAND -h" for its flags.
`

// leaseDuration is how long the lease of "checkpoint commit" lasts unless
// renewed; the command renews it every third of that while it commits and
// releases it when done.
const leaseDuration = 2 * time.Minute

// checkpointCmd is "baton checkpoint": the run's checkpoints in a store.
type checkpointCmd struct{ env env }

func (c *checkpointCmd) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.env.stderr, checkpointUsage)
		return usagef("want a command: commit, ls, show, restore, gc, pin, unpin, verify or hosts")
	}
	var sub func(context.Context, []string) error
	switch args[0] {
	case "commit":
		sub = c.commit
	case "ls":
		sub = c.ls
	case "show":
		sub = c.show
	case "restore":
		sub = c.restore
	case "gc":
		sub = c.gc
	case "pin":
		sub = func(ctx context.Context, args []string) error { return c.pin(ctx, "pin", args) }
	case "unpin":
		sub = func(ctx context.Context, args []string) error { return c.pin(ctx, "unpin", args) }
	case "verify":
		sub = c.verify
	case "hosts":
		sub = c.hosts
	case "help", "-h", "--help":
		fmt.Fprint(c.env.stdout, checkpointUsage)
		return nil
	default:
		fmt.Fprint(c.env.stderr, checkpointUsage)
		return usagef("unknown command %q", args[0])
	}
	if err := sub(ctx, args[1:]); err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	return nil
}

// checkpointFlags are the flags every checkpoint command shares, and those
// of commit.
type checkpointFlags struct {
	storeFlags
	fs    *flag.FlagSet
	store string
	run   string
	// Only registered by commit (committer is true).
	committer        bool
	holder, platform string
	chunkSize        byteSize
}

// register defines the shared flags on fs; withCommit adds the committer's.
func (f *checkpointFlags) register(fs *flag.FlagSet, withCommit bool) {
	f.fs = fs
	fs.StringVar(&f.store, "store", "", "the store `URL`: s3://bucket/prefix or file:///path")
	fs.StringVar(&f.run, "run", "", "the run `ID`: 1 to 128 of [A-Za-z0-9._-]")
	setEnvName(fs, "run", "BATON_RUN_ID")
	f.storeFlags.register(fs, transfer.DefaultWorkers)
	f.committer = withCommit
	if !withCommit {
		return
	}
	host := hostname()
	f.chunkSize = checkpoint.DefaultChunkSize
	fs.StringVar(&f.holder, "holder", host+"/cli", "who commits, recorded in the lease: a holder retakes its own lease at once, so two\ncommitters must never share one `ID`")
	fs.StringVar(&f.platform, "platform", "", "`NAME` of the platform, recorded in the lease and the manifest")
	fs.Var(&f.chunkSize, "chunk-size", "chunk size of the commit: 64KiB to 1GiB")
}

// required returns a usage error naming the flag and its variable if value
// is empty.
func (f *checkpointFlags) required(name, value string) error {
	if value != "" {
		return nil
	}
	return usagef("--%s is required (or set %s)", name, flagEnv(f.fs.Lookup(name)))
}

// validate checks the flags; needRun says whether the command needs --run.
func (f *checkpointFlags) validate(needRun bool) error {
	if err := f.required("store", f.store); err != nil {
		return err
	}
	if needRun || f.run != "" {
		if err := f.required("run", f.run); err != nil {
			return err
		}
		if err := checkpoint.CheckRunID(f.run); err != nil {
			return usagef("--run: %w", err)
		}
	}
	if f.committer && (f.chunkSize < checkpoint.MinChunkSize || f.chunkSize > checkpoint.MaxChunkSize) {
		return usagef("--chunk-size=%d: want 64KiB to 1GiB", f.chunkSize)
	}
	if f.committer && f.holder == "" {
		return usagef("--holder is empty")
	}
	return f.storeFlags.validate()
}

// open opens the store and, if --run is set, the run's repository.
func (f *checkpointFlags) open(ctx context.Context, e env) (storage.Store, *checkpoint.Repo, error) {
	store, err := f.storeFlags.open(ctx, e, f.store)
	if err != nil || f.run == "" {
		return store, nil, err
	}
	repo, err := checkpoint.Open(store, checkpoint.Options{
		Run:           f.run,
		Holder:        checkpoint.Holder{ID: f.holder, Host: hostname(), Platform: f.platform},
		ChunkSize:     int64(f.chunkSize),
		Workers:       f.workers,
		LeaseDuration: leaseDuration,
		Logger:        slog.New(newLogHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return nil, nil, usageError{err}
	}
	return store, repo, nil
}

// parse parses the flags of one checkpoint command and checks that
// it got between minArgs and maxArgs operands.
func (c *checkpointCmd) parse(fs *flag.FlagSet, f *checkpointFlags, needRun bool, args []string, minArgs, maxArgs int, operands string) error {
	if err := parse(fs, args, c.env.getenv); err != nil {
		return err
	}
	if n := fs.NArg(); n < minArgs || n > maxArgs {
		if maxArgs == 0 {
			return usagef("takes no arguments, got %q", fs.Args())
		}
		return usagef("want %s, got %d arguments", operands, n)
	}
	return f.validate(needRun)
}

// hostname is the machine's host name, or "unknown".
func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "unknown"
	}
	return h
}

// metaFlag collects repeated --meta KEY=VALUE pairs.
type metaFlag map[string]string

func (m metaFlag) String() string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return strings.Join(keys, ",")
}

func (m metaFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return errors.New("want KEY=VALUE")
	}
	m[k] = v
	return nil
}

// commit is "baton checkpoint commit DIR". Inside `baton run`
// (BATON_AGENT_SOCKET is set) with no arguments, it asks the agent, which
// holds the run's lease, to commit now, and waits until it has.
func (c *checkpointCmd) commit(ctx context.Context, args []string) error {
	if sock := c.env.getenv("BATON_AGENT_SOCKET"); sock != "" && len(args) == 0 {
		if err := agent.RequestCommit(ctx, sock); err != nil {
			return err
		}
		fmt.Fprintln(c.env.stdout, "committed (by baton run)")
		return nil
	}
	fs := newFlagSet("checkpoint commit", c.env.stderr, "checkpoint commit [flags] DIR")
	var f checkpointFlags
	f.register(fs, true)
	meta := metaFlag{}
	fs.Var(meta, "meta", "`KEY=VALUE` recorded in the manifest; repeatable")
	if err := c.parse(fs, &f, true, args, 1, 1, "DIR"); err != nil {
		return err
	}
	dir := fs.Arg(0)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usagef("%s is not a directory", dir)
	}
	_, repo, err := f.open(ctx, c.env)
	if err != nil {
		return err
	}
	if len(meta) == 0 {
		meta = nil
	}
	start := time.Now()
	lease, err := repo.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("run %s: %w", f.run, err)
	}
	m, err := commitRenewing(ctx, repo, lease, dir, meta)
	if !lease.Lost() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		rerr := lease.Release(rctx)
		cancel()
		if rerr != nil && err == nil {
			fmt.Fprintf(c.env.stderr, "baton checkpoint commit: warning: releasing the lease: %s (it expires by itself)\n",
				redactEnv(oneLine(rerr.Error()), c.env.environ))
		}
	}
	if err != nil {
		return fmt.Errorf("run %s: %w", f.run, err)
	}
	fmt.Fprintf(c.env.stdout, "committed checkpoint %d of run %s: %d files, %s, %s new, in %s\n",
		m.Seq, m.Run, len(m.Files), units.Bytes(m.Size), units.Bytes(m.NewBytes), time.Since(start).Round(time.Millisecond))
	return nil
}

// commitRenewing commits dir while the lease's KeepAlive renews it. If a
// renewal finds the lease lost, the commit is cancelled and fails with
// ErrLeaseLost.
func commitRenewing(ctx context.Context, repo *checkpoint.Repo, lease *checkpoint.Lease, dir string, meta map[string]string) (*checkpoint.Manifest, error) {
	kctx, stop := lease.KeepAlive(ctx, leaseDuration/3)
	m, err := repo.Commit(kctx, lease, dir, meta)
	if lost := stop(); err != nil && lost != nil && ctx.Err() == nil {
		return nil, lost
	}
	return m, err
}

// noCheckpoint explains ErrNoCheckpoint with the run's name.
func noCheckpoint(run string, err error) error {
	if errors.Is(err, checkpoint.ErrNoCheckpoint) {
		return fmt.Errorf("run %s: %w", run, err)
	}
	return err
}

// ls is "baton checkpoint ls".
func (c *checkpointCmd) ls(ctx context.Context, args []string) error {
	fs := newFlagSet("checkpoint ls", c.env.stderr, "checkpoint ls [flags]")
	var f checkpointFlags
	f.register(fs, false)
	asJSON := fs.Bool("json", false, "print the list as JSON")
	if err := c.parse(fs, &f, true, args, 0, 0, ""); err != nil {
		return err
	}
	_, repo, err := f.open(ctx, c.env)
	if err != nil {
		return err
	}
	list, err := repo.List(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		if list == nil {
			list = []checkpoint.Summary{}
		}
		return writeJSON(c.env.stdout, list)
	}
	if len(list) == 0 {
		fmt.Fprintf(c.env.stdout, "run %s has no checkpoint yet\n", f.run)
		return nil
	}
	rows := [][]string{{"SEQ", "CREATED (UTC)", "HOST", "PLATFORM", "FILES", "SIZE", "NEW", ""}}
	for _, s := range list {
		var marks []string
		if s.Latest {
			marks = append(marks, "latest")
		}
		if s.Pinned {
			marks = append(marks, "pinned")
		}
		rows = append(rows, []string{strconv.FormatInt(s.Seq, 10), s.CreatedAt.UTC().Format(time.DateTime), orDash(termSafe(s.Host)),
			orDash(termSafe(s.Platform)), strconv.Itoa(s.Files), units.Bytes(s.Size), units.Bytes(s.NewBytes), strings.Join(marks, ",")})
	}
	return writeTable(c.env.stdout, rows)
}

// writeTable prints rows as aligned columns with no trailing blanks.
func writeTable(w io.Writer, rows [][]string) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for line := range strings.Lines(buf.String()) {
		if _, err := fmt.Fprintln(w, strings.TrimRight(line, " \n")); err != nil {
			return err
		}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parseSeq parses a checkpoint sequence number given as name.
func parseSeq(name, s string) (int64, error) {
	seq, err := strconv.ParseInt(s, 10, 64)
	if err != nil || seq < 1 {
		return 0, usagef("%s %q: want a checkpoint number (1, 2, ...)", name, s)
	}
	return seq, nil
}

// show is "baton checkpoint show [SEQ]".
func (c *checkpointCmd) show(ctx context.Context, args []string) error {
	fs := newFlagSet("checkpoint show", c.env.stderr, "checkpoint show [flags] [SEQ]")
	var f checkpointFlags
	f.register(fs, false)
	asJSON := fs.Bool("json", false, "print the manifest as JSON")
	if err := c.parse(fs, &f, true, args, 0, 1, "at most one SEQ"); err != nil {
		return err
	}
	var seq int64
	if fs.NArg() == 1 {
		var err error
		if seq, err = parseSeq("SEQ", fs.Arg(0)); err != nil {
			return err
		}
	}
	_, repo, err := f.open(ctx, c.env)
	if err != nil {
		return err
	}
	// Two passes over the manifest as it streams in, so that no manifest,
	// however large, is held whole: the first checks it and measures the
	// columns, the second prints.
	widths := [3]int{len("SIZE"), len("CHUNKS"), len("MODE")}
	pathWidth := len("PATH")
	m, err := repo.Walk(ctx, seq, func(f checkpoint.File) error {
		pathWidth = max(pathWidth, len(termSafe(f.Path)))
		for i, v := range fileColumns(f) {
			widths[i] = max(widths[i], len(v))
		}
		return nil
	})
	if err != nil {
		return noCheckpoint(f.run, err)
	}
	seq = m.Seq
	if *asJSON {
		return c.showJSON(ctx, repo, m)
	}
	head := [][]string{
		{"run", termSafe(m.Run)},
		{"seq", strconv.FormatInt(m.Seq, 10)},
		{"parent", strconv.FormatInt(m.Parent, 10)},
		{"epoch", strconv.FormatInt(m.Epoch, 10)},
		{"created", m.CreatedAt.UTC().Format(time.DateTime) + " UTC"},
		{"host", orDash(termSafe(m.Host))},
		{"platform", orDash(termSafe(m.Platform))},
		{"chunks", units.Bytes(m.ChunkSize) + ", " + termSafe(m.Hash)},
		{"size", fmt.Sprintf("%s in %d files, %s new", units.Bytes(m.Size), m.FileCount, units.Bytes(m.NewBytes))},
	}
	if len(m.Meta) > 0 {
		head = append(head, []string{"meta", termSafeMeta(m.Meta)})
	}
	if err := writeTable(c.env.stdout, head); err != nil {
		return err
	}
	w := bufio.NewWriter(c.env.stdout)
	row := func(path string, cols [3]string) {
		fmt.Fprintf(w, "%-*s  %-*s  %-*s  %s\n", pathWidth, path, widths[0], cols[0], widths[1], cols[1], cols[2])
	}
	fmt.Fprintln(w)
	row("PATH", [3]string{"SIZE", "CHUNKS", "MODE"})
	if _, err := repo.Walk(ctx, seq, func(f checkpoint.File) error {
		row(termSafe(f.Path), fileColumns(f))
		return nil
	}); err != nil {
		return err
	}
	return w.Flush()
}

// fileColumns are the SIZE, CHUNKS and MODE columns of f in show.
func fileColumns(f checkpoint.File) [3]string {
	return [3]string{units.Bytes(f.Size), strconv.Itoa(len(f.Chunks)), f.Mode.String()}
}

// showJSON prints the manifest m heads as JSON, its files streamed in from
// a second pass, one per line.
func (c *checkpointCmd) showJSON(ctx context.Context, repo *checkpoint.Repo, m *checkpoint.Manifest) error {
	head, err := json.Marshal(m) // Files is nil and last: it ends in "files":null}
	if err != nil {
		return err
	}
	head, ok := bytes.CutSuffix(head, []byte("null}"))
	if !ok {
		return fmt.Errorf("show: unexpected manifest encoding")
	}
	w := bufio.NewWriter(c.env.stdout)
	w.Write(head)
	w.WriteString("[")
	n := 0
	if _, err := repo.Walk(ctx, m.Seq, func(f checkpoint.File) error {
		b, err := json.Marshal(f)
		if n++; n > 1 {
			w.WriteString(",")
		}
		w.WriteString("\n  ")
		w.Write(b)
		return err
	}); err != nil {
		return err
	}
	w.WriteString("\n]}\n")
	return w.Flush()
}

// restore is "baton checkpoint restore DIR".
func (c *checkpointCmd) restore(ctx context.Context, args []string) error {
	fs := newFlagSet("checkpoint restore", c.env.stderr, "checkpoint restore [flags] DIR")
	var f checkpointFlags
	f.register(fs, false)
	seqFlag := fs.Int64("seq", 0, "restore checkpoint `N` instead of the latest")
	force := fs.Bool("force", false, "replace what DIR holds if it is not empty")
	if err := c.parse(fs, &f, true, args, 1, 1, "DIR"); err != nil {
		return err
	}
	if *seqFlag < 0 {
		return usagef("--seq=%d: want a checkpoint number", *seqFlag)
	}
	dir := fs.Arg(0)
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return usagef("%s is not a directory", dir)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		if len(entries) > 0 && !*force {
			return usagef("%s is not empty and restore replaces what it holds; pass --force to allow that", dir)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	_, repo, err := f.open(ctx, c.env)
	if err != nil {
		return err
	}
	start := time.Now()
	m, err := repo.Restore(ctx, *seqFlag, dir)
	if err != nil {
		return noCheckpoint(f.run, err)
	}
	fmt.Fprintf(c.env.stdout, "restored checkpoint %d of run %s into %s: %d files, %s, in %s\n",
		m.Seq, m.Run, dir, len(m.Files), units.Bytes(m.Size), time.Since(start).Round(time.Millisecond))
	return nil
}

// gc is "baton checkpoint gc": retention on one run, then a sweep of the
// store's chunks.
func (c *checkpointCmd) gc(ctx context.Context, args []string) error {
	fs := newFlagSet("checkpoint gc", c.env.stderr, "checkpoint gc [flags]")
	var f checkpointFlags
	f.register(fs, false)
	keep := fs.Int("keep", 0, "keep the newest `K` checkpoints of --run (and the pinned ones), delete the others;\n0 deletes no checkpoint")
	grace := fs.Duration("grace", checkpoint.DefaultGCGrace, "never delete a chunk, or an unpublished manifest, younger than this")
	if err := c.parse(fs, &f, false, args, 0, 0, ""); err != nil {
		return err
	}
	switch {
	case *keep < 0:
		return usagef("--keep=%d: want 1 or more (or 0 to delete no checkpoint)", *keep)
	case *keep > 0 && f.run == "":
		return f.required("run", f.run)
	case *grace < 0:
		return usagef("--grace=%s: want 0 or more", *grace)
	}
	store, repo, err := f.open(ctx, c.env)
	if err != nil {
		return err
	}
	if *keep > 0 {
		deleted, err := repo.Retain(ctx, *keep, *grace)
		if err != nil {
			return fmt.Errorf("retention of run %s: %w", f.run, err)
		}
		seqs := make([]string, len(deleted))
		for i, s := range deleted {
			seqs[i] = strconv.FormatInt(s, 10)
		}
		if len(seqs) == 0 {
			seqs = []string{"none"}
		}
		fmt.Fprintf(c.env.stdout, "run %s: kept the newest %d checkpoints and the pinned ones; deleted checkpoints: %s\n",
			f.run, *keep, strings.Join(seqs, ", "))
	}
	if f.run != "" {
		if _, err := record.Compact(ctx, store, f.run, record.CompactOptions{}); err != nil {
			fmt.Fprintf(c.env.stderr, "baton checkpoint gc: warning: compacting the run's telemetry: %s\n", redactEnv(oneLine(err.Error()), c.env.environ))
		}
	}
	stats, err := checkpoint.GC(ctx, store, checkpoint.GCOptions{Grace: *grace, Holder: hostname() + "/gc"})
	if err != nil {
		return err
	}
	if len(stats.Unpublished) > 0 {
		fmt.Fprintf(c.env.stdout, "deleted unpublished manifests older than %s: %s\n", *grace, strings.Join(stats.Unpublished, ", "))
	}
	fmt.Fprintf(c.env.stdout, "chunks: %d in the store, %d referenced by %d manifests; deleted %d (%s); kept %d unreferenced younger than %s\n",
		stats.Chunks, stats.ReferencedNow, stats.Manifests, stats.Deleted, units.Bytes(stats.DeletedBytes), stats.KeptYoung, *grace)
	return nil
}

// pin is "baton checkpoint pin SEQ" and "baton checkpoint unpin SEQ".
func (c *checkpointCmd) pin(ctx context.Context, verb string, args []string) error {
	fs := newFlagSet("checkpoint "+verb, c.env.stderr, "checkpoint "+verb+" [flags] SEQ")
	var f checkpointFlags
	f.register(fs, false)
	if err := c.parse(fs, &f, true, args, 1, 1, "SEQ"); err != nil {
		return err
	}
	seq, err := parseSeq("SEQ", fs.Arg(0))
	if err != nil {
		return err
	}
	_, repo, err := f.open(ctx, c.env)
	if err != nil {
		return err
	}
	if verb == "pin" {
		err = repo.Pin(ctx, seq)
	} else {
		err = repo.Unpin(ctx, seq)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.env.stdout, "%sned checkpoint %d of run %s\n", verb, seq, f.run)
	return nil
}

// hosts is "baton checkpoint hosts": the machines the run gave up for bad
// health, which baton run refuses, and forgetting them.
func (c *checkpointCmd) hosts(ctx context.Context, args []string) error {
	fs := newFlagSet("checkpoint hosts", c.env.stderr, "checkpoint hosts [flags]")
	var f checkpointFlags
	f.register(fs, false)
	forget := fs.String("forget", "", "forget the machine `ID` (as listed): baton run tries it again")
	forgetAll := fs.Bool("forget-all", false, "forget every machine of the run")
	asJSON := fs.Bool("json", false, "print the list as JSON")
	if err := c.parse(fs, &f, true, args, 0, 0, ""); err != nil {
		return err
	}
	if *forget != "" && *forgetAll {
		return usagef("--forget and --forget-all exclude each other")
	}
	_, repo, err := f.open(ctx, c.env)
	if err != nil {
		return err
	}
	if *forget != "" || *forgetAll {
		if err := repo.ForgetBadHost(ctx, *forget); err != nil {
			return err
		}
		fmt.Fprintf(c.env.stdout, "run %s: forgot %s\n", f.run, map[bool]string{true: "every bad machine", false: "machine " + *forget}[*forgetAll])
		return nil
	}
	hosts, err := repo.BadHosts(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		if hosts == nil {
			hosts = []checkpoint.BadHost{}
		}
		return writeJSON(c.env.stdout, hosts)
	}
	if len(hosts) == 0 {
		fmt.Fprintf(c.env.stdout, "run %s has given up no machine\n", f.run)
		return nil
	}
	rows := [][]string{{"ID", "GIVEN UP (UTC)", "PLATFORM", "STATUS", "MACHINE", "REASON"}}
	for _, h := range hosts {
		rows = append(rows, []string{h.ID, h.At.UTC().Format(time.DateTime), orDash(termSafe(h.Platform)), strconv.Itoa(h.Status),
			termSafe(h.Machine), termSafe(h.Reason)})
	}
	return writeTable(c.env.stdout, rows)
}
