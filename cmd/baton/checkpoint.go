package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/batonrun/baton/agent"
	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/agent/telemetry/record"
	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/progress"
	"github.com/batonrun/baton/internal/spell"
	"github.com/batonrun/baton/internal/units"
	"github.com/batonrun/baton/sync/storage"
)

const checkpointUsage = `Usage: baton checkpoint COMMAND [flags] [ARGS]

The checkpoints of one run in a store (docs/checkpoint-format.md).

Commands:
  commit [flags] DIR            commit DIR as the run's next checkpoint
  commit                        inside baton run (a trainer's call): ask baton run
                                to commit its checkpoint directory now, and wait
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

// checkpointCommands are the commands of baton checkpoint.
func checkpointCommands() []string {
	return []string{"commit", "ls", "show", "restore", "gc", "pin", "unpin", "verify", "hosts"}
}

// leaseDuration is how long the lease of "checkpoint commit" lasts unless
// renewed; the command renews it every third of that while it commits and
// releases it when done.
const leaseDuration = 2 * time.Minute

// checkpointCmd is "baton checkpoint": the run's checkpoints in a store.
type checkpointCmd struct {
	env      env
	progress *progress.Reporter // shows commits and restores (see env.progress)
}

func (c *checkpointCmd) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.env.stderr, checkpointUsage)
		return usagef("want a command: %s", strings.Join(checkpointCommands(), ", "))
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
		msg := fmt.Sprintf("unknown command %q", args[0])
		if guess := spell.Closest(args[0], checkpointCommands()); guess != "" {
			msg += "; did you mean " + guess + "?"
		}
		return usagef("%s (baton checkpoint -h lists them)", msg)
	}
	if err := sub(ctx, args[1:]); err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	return nil
}

// parse reads the settings of the checkpoint command called name into dst
// and checks that it got between minArgs and maxArgs operands.
func (c *checkpointCmd) parse(name string, dst any, args []string, minArgs, maxArgs int, operands string) ([]string, error) {
	ops, err := c.env.settings("checkpoint "+name, dst, args)
	if err != nil {
		return nil, err
	}
	return ops, wantOperands(ops, minArgs, maxArgs, operands)
}

// open opens the store of r and, when r names a run, the run's repository,
// for holder (a committer) with chunks of chunkSize; a reader passes zero
// values.
func (c *checkpointCmd) open(ctx context.Context, r config.Repo, holder checkpoint.Holder, chunkSize int64) (storage.Store, *checkpoint.Repo, error) {
	store, err := c.env.openStore(ctx, r.Store, r.S3Driver, r.Workers)
	if err != nil || r.RunID == "" {
		return store, nil, err
	}
	key, err := checkpoint.KeyFromSetting(r.EncryptionKey)
	if err != nil {
		return nil, nil, usageError{err}
	}
	repo, err := checkpoint.Open(store, checkpoint.Options{
		Key:           key,
		Run:           r.RunID,
		Holder:        holder,
		ChunkSize:     chunkSize,
		Workers:       r.Workers,
		LeaseDuration: leaseDuration,
		Progress:      c.progress,
		Logger:        slog.New(newLogHandler(c.env.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return nil, nil, usageError{err}
	}
	return store, repo, nil
}

// hostname is the machine's host name, or "unknown".
func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "unknown"
	}
	return h
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
	var f config.CheckpointCommit
	ops, err := c.parse("commit", &f, args, 1, 1, "DIR")
	if err != nil {
		return err
	}
	dir := ops[0]
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usagef("%s is not a directory", dir)
	}
	c.env.lowerSelf("checkpoint commit", f.Nice)
	c.progress = c.env.progress(f.Progress, slog.New(newLogHandler(c.env.stderr, nil)))
	holder := checkpoint.Holder{ID: f.Holder, Host: hostname(), Platform: f.Platform}
	if holder.ID == "" {
		holder.ID = hostname() + "/cli"
	}
	_, repo, err := c.open(ctx, f.Repo, holder, int64(f.ChunkSize))
	if err != nil {
		return err
	}
	var meta map[string]string
	for _, kv := range f.Meta {
		k, v, _ := strings.Cut(kv, "=") // Validate checked the form
		if meta == nil {
			meta = map[string]string{}
		}
		meta[k] = v
	}
	start := time.Now()
	lease, err := repo.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("run %s: %w", f.RunID, err)
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
		return fmt.Errorf("run %s: %w", f.RunID, err)
	}
	fmt.Fprintf(c.env.stdout, "committed checkpoint %d of run %s: %s, %s, %s new, in %s\n",
		m.Seq, m.Run, units.Plural(len(m.Files), "file"), units.Bytes(m.Size), units.Bytes(m.NewBytes), time.Since(start).Round(time.Millisecond))
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
	var f config.CheckpointList
	if _, err := c.parse("ls", &f, args, 0, 0, ""); err != nil {
		return err
	}
	_, repo, err := c.open(ctx, f.Repo, checkpoint.Holder{}, 0)
	if err != nil {
		return err
	}
	list, err := repo.List(ctx)
	if err != nil {
		return err
	}
	header := []string{"SEQ", "CREATED (UTC)", "HOST", "PLATFORM", "FILES", "SIZE", "NEW", ""}
	return printList(c.env.stdout, list, f.JSON, "run "+f.RunID+" has no checkpoint yet", header, func(s checkpoint.Summary) []string {
		var marks []string
		if s.Latest {
			marks = append(marks, "latest")
		}
		if s.Pinned {
			marks = append(marks, "pinned")
		}
		return []string{strconv.FormatInt(s.Seq, 10), s.CreatedAt.UTC().Format(time.DateTime), orDash(termSafe(s.Host)),
			orDash(termSafe(s.Platform)), strconv.Itoa(s.Files), units.Bytes(s.Size), units.Bytes(s.NewBytes), strings.Join(marks, ",")}
	})
}

// printList prints items as JSON (none as []), or as a table of header and
// one row of each item, or where there are none the line empty.
func printList[T any](w io.Writer, items []T, asJSON bool, empty string, header []string, row func(T) []string) error {
	if asJSON {
		if items == nil {
			items = []T{}
		}
		return writeJSON(w, items)
	}
	if len(items) == 0 {
		_, err := fmt.Fprintln(w, empty)
		return err
	}
	rows := [][]string{header}
	for _, it := range items {
		rows = append(rows, row(it))
	}
	return writeTable(w, rows)
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
	var f config.CheckpointList
	ops, err := c.parse("show", &f, args, 0, 1, "at most one SEQ")
	if err != nil {
		return err
	}
	var seq int64
	if len(ops) == 1 {
		if seq, err = parseSeq("SEQ", ops[0]); err != nil {
			return err
		}
	}
	_, repo, err := c.open(ctx, f.Repo, checkpoint.Holder{}, 0)
	if err != nil {
		return err
	}
	// Two passes over the manifest as it streams in, so that no manifest,
	// however large, is held whole: the first checks it and measures the
	// columns, the second prints.
	widths := [3]int{len("SIZE"), len("CHUNKS"), len("MODE")}
	pathWidth := len("PATH")
	m, err := repo.Walk(ctx, seq, func(file checkpoint.File) error {
		pathWidth = max(pathWidth, len(termSafe(file.Path)))
		for i, v := range fileColumns(file) {
			widths[i] = max(widths[i], len(v))
		}
		return nil
	})
	if err != nil {
		return noCheckpoint(f.RunID, err)
	}
	seq = m.Seq
	if f.JSON {
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
		{"size", fmt.Sprintf("%s in %s, %s new", units.Bytes(m.Size), units.Plural(m.FileCount, "file"), units.Bytes(m.NewBytes))},
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
	var f config.CheckpointRestore
	ops, err := c.parse("restore", &f, args, 1, 1, "DIR")
	if err != nil {
		return err
	}
	dir := ops[0]
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return usagef("%s is not a directory", dir)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		if len(entries) > 0 && !f.Force {
			return usagef("%s is not empty and restore replaces what it holds; pass --force to allow that", dir)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	c.progress = c.env.progress(f.Progress, slog.New(newLogHandler(c.env.stderr, nil)))
	_, repo, err := c.open(ctx, f.Repo, checkpoint.Holder{}, 0)
	if err != nil {
		return err
	}
	start := time.Now()
	m, err := repo.Restore(ctx, int64(f.Seq), dir)
	if err != nil {
		return noCheckpoint(f.RunID, err)
	}
	fmt.Fprintf(c.env.stdout, "restored checkpoint %d of run %s into %s: %s, %s, in %s\n",
		m.Seq, m.Run, dir, units.Plural(len(m.Files), "file"), units.Bytes(m.Size), time.Since(start).Round(time.Millisecond))
	return nil
}

// gc is "baton checkpoint gc": retention on one run, then a sweep of the
// store's chunks.
func (c *checkpointCmd) gc(ctx context.Context, args []string) error {
	var f config.CheckpointGC
	if _, err := c.parse("gc", &f, args, 0, 0, ""); err != nil {
		return err
	}
	if f.Keep > 0 && f.RunID == "" {
		return usagef("--keep=%d: needs --run (or BATON_RUN_ID, or run_id in the config file)", f.Keep)
	}
	repoSettings := config.Repo{Store: f.Store, RunID: f.RunID, Workers: f.Workers, S3Driver: f.S3Driver}
	store, repo, err := c.open(ctx, repoSettings, checkpoint.Holder{}, 0)
	if err != nil {
		return err
	}
	if f.Keep > 0 {
		deleted, err := repo.Retain(ctx, f.Keep, f.Grace)
		if err != nil {
			return fmt.Errorf("retention of run %s: %w", f.RunID, err)
		}
		seqs := make([]string, len(deleted))
		for i, s := range deleted {
			seqs[i] = strconv.FormatInt(s, 10)
		}
		if len(seqs) == 0 {
			seqs = []string{"none"}
		}
		newest := "the newest checkpoint"
		if f.Keep != 1 {
			newest = "the newest " + units.Plural(f.Keep, "checkpoint")
		}
		fmt.Fprintf(c.env.stdout, "run %s: kept %s and the pinned ones; deleted checkpoints: %s\n",
			f.RunID, newest, strings.Join(seqs, ", "))
	}
	if f.RunID != "" {
		// gc takes no key: an encrypted run's telemetry is left as it is
		// (Compact never rewrites it in the clear); its next start compacts it.
		if _, err := record.Compact(ctx, store, f.RunID, record.CompactOptions{Key: repo.Key()}); errors.Is(err, checkpoint.ErrEncrypted) {
			fmt.Fprintf(c.env.stderr, "baton checkpoint gc: warning: run %s is encrypted and gc takes no key: its telemetry is left uncompacted\n", f.RunID)
		} else if err != nil {
			fmt.Fprintf(c.env.stderr, "baton checkpoint gc: warning: compacting the run's telemetry: %s\n", redactEnv(oneLine(err.Error()), c.env.environ))
		}
	}
	stats, err := checkpoint.GC(ctx, store, checkpoint.GCOptions{Grace: f.Grace, Holder: hostname() + "/gc"})
	if err != nil {
		return err
	}
	if len(stats.Unpublished) > 0 {
		fmt.Fprintf(c.env.stdout, "deleted unpublished manifests older than %s: %s\n", f.Grace, strings.Join(stats.Unpublished, ", "))
	}
	fmt.Fprintf(c.env.stdout, "chunks: %d in the store, %d referenced by %s; deleted %d (%s); kept %d unreferenced younger than %s\n",
		stats.Chunks, stats.ReferencedNow, units.Plural(stats.Manifests, "manifest"), stats.Deleted, units.Bytes(stats.DeletedBytes), stats.KeptYoung, f.Grace)
	return nil
}

// pin is "baton checkpoint pin SEQ" and "baton checkpoint unpin SEQ".
func (c *checkpointCmd) pin(ctx context.Context, verb string, args []string) error {
	var f config.Repo
	ops, err := c.parse(verb, &f, args, 1, 1, "SEQ")
	if err != nil {
		return err
	}
	seq, err := parseSeq("SEQ", ops[0])
	if err != nil {
		return err
	}
	_, repo, err := c.open(ctx, f, checkpoint.Holder{}, 0)
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
	fmt.Fprintf(c.env.stdout, "%sned checkpoint %d of run %s\n", verb, seq, f.RunID)
	return nil
}

// hosts is "baton checkpoint hosts": the machines the run gave up for bad
// health, which baton run refuses, and forgetting them.
func (c *checkpointCmd) hosts(ctx context.Context, args []string) error {
	var f config.CheckpointHosts
	if _, err := c.parse("hosts", &f, args, 0, 0, ""); err != nil {
		return err
	}
	if f.Forget != "" && f.ForgetAll {
		return usagef("--forget and --forget-all exclude each other")
	}
	_, repo, err := c.open(ctx, f.Repo, checkpoint.Holder{}, 0)
	if err != nil {
		return err
	}
	if f.Forget != "" || f.ForgetAll {
		if err := repo.ForgetBadHost(ctx, f.Forget); err != nil {
			return err
		}
		fmt.Fprintf(c.env.stdout, "run %s: forgot %s\n", f.RunID, map[bool]string{true: "every bad machine", false: "machine " + f.Forget}[f.ForgetAll])
		return nil
	}
	hosts, err := repo.BadHosts(ctx)
	if err != nil {
		return err
	}
	header := []string{"ID", "GIVEN UP (UTC)", "PLATFORM", "STATUS", "MACHINE", "REASON"}
	return printList(c.env.stdout, hosts, f.JSON, "run "+f.RunID+" has given up no machine", header, func(h checkpoint.BadHost) []string {
		return []string{h.ID, h.At.UTC().Format(time.DateTime), orDash(termSafe(h.Platform)), strconv.Itoa(h.Status),
			termSafe(h.Machine), termSafe(h.Reason)}
	})
}
