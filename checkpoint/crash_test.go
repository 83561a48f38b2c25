package checkpoint_test

// Crash consistency: a committer process is killed with SIGKILL at seeded
// random moments (while it writes a snapshot, while it uploads chunks,
// between its manifest and latest.json, inside a store call...). After each
// kill, whatever latest.json names must restore byte-identical to a snapshot
// that was fully written, and a new repository instance with the same holder
// id must take the lease back at once and commit.
//
// The committer is this test binary run again in child mode (see TestMain):
// it writes snapshot k, commits it, and repeats, reporting every step on
// stdout. The parent picks the step to kill at from the seed; the child
// reports "kill" after that step, and in half of the trials waits there, so
// that the kill lands exactly at it, and in the others runs on, so that it
// lands wherever the child has got to when the parent's signal arrives.
//
// BATON_CRASH_SEED=N reruns the trials with another seed.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/s3test"
	"github.com/batonrun/baton/sync/faults"
	"github.com/batonrun/baton/sync/file"
	"github.com/batonrun/baton/sync/file/filetest"
	"github.com/batonrun/baton/sync/s3aws"
	"github.com/batonrun/baton/sync/s3config"
	"github.com/batonrun/baton/sync/storage"
)

// crashChildEnv, when set, makes the test binary a crash child; its value
// is the child's crashChild settings as JSON.
const crashChildEnv = "BATON_CHECKPOINT_CRASH_CHILD"

// crashHolder is the holder id of every committer of the crash tests: the
// same on every "restart", so each takes the lease back at once.
const crashHolder = "crash-holder"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(crashChildEnv); cfg != "" {
		os.Exit(crashChildMain(cfg))
	}
	os.Exit(m.Run())
}

// crashChild is what a crash child is told.
type crashChild struct {
	Store string          `json:"store"` // "file" or "s3"
	Root  string          `json:"root"`  // of the file store
	S3    s3config.Config `json:"s3"`
	Dir   string          `json:"dir"` // the checkpoint directory
	Seed  uint64          `json:"seed"`
	Start int             `json:"start"` // first snapshot to write
	Limit int             `json:"limit"` // snapshots after which it exits by itself
	// KillAt is the event after which the child prints "kill"; with Block
	// it then waits for the kill.
	KillAt int  `json:"kill_at"`
	Block  bool `json:"block"`
}

// crashChildMain is the committer process. Every event is one line on
// stdout, "N what...", written with one write: "acquired EPOCH", "store KEY"
// (a store call about to be made), "file K PATH" (part of snapshot K
// written), "written K" (snapshot K fully written), "committed K SEQ".
func crashChildMain(raw string) int {
	var cfg crashChild
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "crash child: %v\n", err)
		return 1
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "crash child: "+format+"\n", args...)
		return 1
	}
	var (
		mu     sync.Mutex
		events int
	)
	emit := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		events++
		line := strconv.Itoa(events) + " " + fmt.Sprintf(format, args...) + "\n"
		if events == cfg.KillAt {
			line += "kill\n"
		}
		os.Stdout.WriteString(line)
		if events == cfg.KillAt && cfg.Block {
			// The parent never writes to stdin: this returns only if the
			// parent went away without killing us.
			io.Copy(io.Discard, os.Stdin)
			os.Exit(3)
		}
	}
	ctx := context.Background()
	var (
		inner storage.Store
		err   error
	)
	switch cfg.Store {
	case "file":
		inner, err = file.New(cfg.Root)
	case "s3":
		inner, err = s3aws.New(ctx, cfg.S3)
	default:
		err = fmt.Errorf("unknown store %q", cfg.Store)
	}
	if err != nil {
		return fail("%v", err)
	}
	store := faults.Wrap(inner, hook("", func(key string) { emit("store %s", key) }))
	repo, err := checkpoint.Open(store, crashOptions())
	if err != nil {
		return fail("%v", err)
	}
	lease, err := repo.Acquire(ctx)
	if err != nil {
		return fail("acquire: %v", err)
	}
	emit("acquired %d", lease.Epoch())
	for k := cfg.Start; k < cfg.Start+cfg.Limit; k++ {
		if err := writeSnapshot(cfg.Dir, cfg.Seed, k, func(p string) { emit("file %d %s", k, p) }); err != nil {
			return fail("writing snapshot %d: %v", k, err)
		}
		emit("written %d", k)
		m, err := repo.Commit(ctx, lease, cfg.Dir, map[string]string{"k": strconv.Itoa(k)})
		if err != nil {
			return fail("commit of snapshot %d: %v", k, err)
		}
		emit("committed %d %d", k, m.Seq)
	}
	return 0
}

func crashOptions() checkpoint.Options {
	return checkpoint.Options{
		Run:       testRun,
		Holder:    checkpoint.Holder{ID: crashHolder, Host: "crash-host", Platform: "test"},
		ChunkSize: 64 << 10,
		Workers:   4,
		// Long enough never to expire during the test: each restart takes
		// its own lease back because the holder id is the same.
		LeaseDuration: time.Hour,
		Logger:        quiet,
	}
}

const (
	modelRegions = 9
	regionSize   = 64 << 10
)

// snapshotFiles is snapshot k of the checkpoint directory: a model file of 9
// chunks of which about a third change from one snapshot to the next (and
// the header, every time), an optimizer file rewritten whole with a size
// that varies, a step file, a config file that never changes, and an RNG
// file that exists in every third snapshot only.
func snapshotFiles(seed uint64, k int) map[string][]byte {
	files := map[string][]byte{
		"config.json":    fmt.Appendf(nil, "{\"model\": \"tiny\", \"seed\": %d}\n", seed),
		"optim/state.pt": content(150_000+(k%4)*10_000, seed, 2, uint64(k)),
		"step.txt":       fmt.Appendf(nil, "%d\n", k),
	}
	var model []byte
	for j := range modelRegions {
		n := regionSize
		if j == modelRegions-1 {
			n = 1000
		}
		model = append(model, content(n, seed, 1, uint64(j), uint64((k+j)/3))...)
	}
	copy(model, fmt.Sprintf("step=%08d;", k))
	files["model.safetensors"] = model
	if k%3 == 0 {
		files[fmt.Sprintf("rng/state-%d.bin", k)] = content(5000, seed, 3, uint64(k))
	}
	return files
}

// writeSnapshot turns dir into snapshot k the way a trainer would: the
// config only if it is missing, the model in place region by region, the
// optimizer through a temporary file and a rename, the step file truncated
// and rewritten; then files the snapshot lacks are removed. progress, if
// not nil, is called after each step.
func writeSnapshot(dir string, seed uint64, k int, progress func(step string)) error {
	if progress == nil {
		progress = func(string) {}
	}
	files := snapshotFiles(seed, k)
	if err := os.MkdirAll(filepath.Join(dir, "optim"), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "rng"), 0o755); err != nil {
		return err
	}
	cfg := filepath.Join(dir, "config.json")
	if b, err := os.ReadFile(cfg); err != nil || !bytes.Equal(b, files["config.json"]) {
		if err := os.WriteFile(cfg, files["config.json"], 0o644); err != nil {
			return err
		}
		progress("config.json")
	}

	model := files["model.safetensors"]
	f, err := os.OpenFile(filepath.Join(dir, "model.safetensors"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	for off := 0; off < len(model); off += regionSize {
		if _, err := f.WriteAt(model[off:min(off+regionSize, len(model))], int64(off)); err != nil {
			f.Close()
			return err
		}
		if off/regionSize%3 == 2 {
			progress(fmt.Sprintf("model.safetensors@%d", off))
		}
	}
	if err := f.Truncate(int64(len(model))); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}

	tmp := filepath.Join(dir, "optim", ".state.pt.tmp")
	if err := os.WriteFile(tmp, files["optim/state.pt"], 0o600); err != nil {
		return err
	}
	progress("optim/.state.pt.tmp")
	if err := os.Rename(tmp, filepath.Join(dir, "optim", "state.pt")); err != nil {
		return err
	}
	progress("optim/state.pt")

	if err := os.WriteFile(filepath.Join(dir, "step.txt"), files["step.txt"], 0o644); err != nil {
		return err
	}
	progress("step.txt")
	for p, b := range files {
		if strings.HasPrefix(p, "rng/") {
			if err := os.WriteFile(filepath.Join(dir, p), b, 0o600); err != nil {
				return err
			}
			progress(p)
		}
	}
	var stale []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if _, ok := files[filepath.ToSlash(rel)]; !ok {
			stale = append(stale, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range stale {
		if err := os.Remove(p); err != nil {
			return err
		}
		progress("removed " + p)
	}
	return nil
}

// crashEvents is what the parent learnt from one child.
type crashEvents struct {
	lines         []string
	written       map[int]bool // snapshots fully written
	lastCommitted int          // the last snapshot whose commit returned, or -1
	maxK          int          // the highest snapshot the child reported touching
}

// runCrashChild runs one child, kills it when it says "kill", and returns
// its events. It fails the test unless the child died of that SIGKILL.
func runCrashChild(t *testing.T, c crashChild) crashEvents {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+string(raw))
	stdout, stderr := startChild(t, cmd)
	ev := crashEvents{written: map[int]bool{}, lastCommitted: -1, maxK: c.Start - 1}
	killed := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		ev.lines = append(ev.lines, line)
		if line == "kill" {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("kill: %v", err)
			}
			killed = true
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		k, err := strconv.Atoi(f[2])
		switch f[1] {
		case "file", "written", "committed":
			if err != nil {
				t.Fatalf("child said %q", line)
			}
			ev.maxK = max(ev.maxK, k)
		}
		switch f[1] {
		case "written":
			ev.written[k] = true
		case "committed":
			ev.lastCommitted = k
		}
	}
	werr := cmd.Wait()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !killed || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed as planned (kill at event %d; exit: %v)\nstderr:\n%s\nlast events:\n%s",
			c.KillAt, werr, stderr.String(), strings.Join(ev.lines[max(0, len(ev.lines)-10):], "\n"))
	}
	return ev
}

// crashSeed is the seed of the trials: BATON_CRASH_SEED, or a fixed one.
func crashSeed(t *testing.T) uint64 {
	seed := uint64(20261126)
	if s := os.Getenv("BATON_CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("BATON_CRASH_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (BATON_CRASH_SEED reruns with another)", seed)
	return seed
}

// crashTrials runs trials kill-and-check rounds against one store, which
// the children open from child and the parent uses as store.
func crashTrials(t *testing.T, trials int, child crashChild, store storage.Store) {
	ctx := t.Context()
	seed := crashSeed(t)
	child.Seed = seed
	child.Dir = filepath.Join(t.TempDir(), "ckpt")
	child.Limit = 20
	restores := t.TempDir()
	prevK := -1                // the snapshot latest.json names before the trial; -1: none
	landed := map[string]int{} // what the event the kill followed was
	for trial := range trials {
		rng := rand.New(rand.NewPCG(seed, uint64(trial)))
		c := child
		c.Start = prevK + 1
		c.KillAt = 1 + rng.IntN(70)
		c.Block = rng.IntN(2) == 0
		ev := runCrashChild(t, c)
		where := fmt.Sprintf("trial %d (kill at event %d, block %v): ", trial, c.KillAt, c.Block)
		for i, line := range ev.lines {
			if line == "kill" && i > 0 {
				f := strings.Fields(ev.lines[i-1])
				what := f[1]
				if what == "store" {
					what += " " + strings.SplitN(strings.TrimPrefix(f[2], "runs/"+testRun+"/"), "/", 2)[0]
				}
				landed[what]++
			}
		}

		// Whatever latest.json names restores to a fully written snapshot,
		// no older than the last commit the child saw succeed.
		reader := openOn(t, store, "", time.Now)
		dst := filepath.Join(restores, fmt.Sprintf("trial-%d", trial))
		m, err := reader.Restore(ctx, 0, dst)
		switch {
		case errors.Is(err, checkpoint.ErrNoCheckpoint):
			if prevK >= 0 || ev.lastCommitted >= 0 {
				t.Fatalf("%sthe run has no checkpoint any more (previous %d, child committed %d)", where, prevK, ev.lastCommitted)
			}
		case err != nil:
			t.Fatalf("%srestore: %v\nchild's last events:\n%s", where, err, strings.Join(ev.lines[max(0, len(ev.lines)-8):], "\n"))
		default:
			k, err := strconv.Atoi(m.Meta["k"])
			if err != nil {
				t.Fatalf("%slatest checkpoint %d has meta %v", where, m.Seq, m.Meta)
			}
			if k != prevK && !ev.written[k] {
				t.Fatalf("%slatest is snapshot %d, which was never fully written (written: %v)", where, k, ev.written)
			}
			if k < prevK || k < ev.lastCommitted {
				t.Fatalf("%slatest went back to snapshot %d (previous %d, child committed %d)", where, k, prevK, ev.lastCommitted)
			}
			if d := diffTrees(readTree(t, dst), snapshotFiles(seed, k)); d != "" {
				t.Fatalf("%srestore of checkpoint %d is not snapshot %d: %s", where, m.Seq, k, d)
			}
			list, err := reader.List(ctx)
			if err != nil || len(list) == 0 || !list[len(list)-1].Latest || list[len(list)-1].Seq != m.Seq {
				t.Fatalf("%slist after the crash: %v, %v", where, list, err)
			}
			prevK = k
		}

		// A restarted committer takes its lease back at once and commits.
		lease0, hadLease := readLease(t, store)
		var highest int64
		for _, key := range listKeys(t, store, "runs/"+testRun+"/manifests/") {
			seq, err := strconv.ParseInt(strings.TrimSuffix(key[strings.LastIndex(key, "/")+1:], ".json"), 10, 64)
			if err != nil {
				t.Fatalf("%sstray manifest key %s", where, key)
			}
			highest = max(highest, seq)
		}
		opts := crashOptions()
		opts.Retry = fastRetry()
		w, err := checkpoint.Open(store, opts)
		if err != nil {
			t.Fatal(err)
		}
		lease, err := w.Acquire(ctx)
		if err != nil {
			t.Fatalf("%srestarted committer: acquire: %v", where, err)
		}
		if hadLease && lease.Epoch() != lease0.Epoch+1 {
			t.Fatalf("%srestarted committer got epoch %d, lease.json had %d", where, lease.Epoch(), lease0.Epoch)
		}
		if l, ok := readLatest(t, store); ok && l.Epoch != lease.Epoch() {
			t.Fatalf("%slatest.json carries epoch %d after the takeover at epoch %d", where, l.Epoch, lease.Epoch())
		}
		k := max(ev.maxK, prevK) + 1
		if err := writeSnapshot(child.Dir, seed, k, nil); err != nil {
			t.Fatal(err)
		}
		m, err = w.Commit(ctx, lease, child.Dir, map[string]string{"k": strconv.Itoa(k)})
		if err != nil {
			t.Fatalf("%scommit after the crash: %v", where, err)
		}
		if m.Seq <= highest || m.Epoch != lease.Epoch() {
			t.Fatalf("%scommit after the crash got seq %d epoch %d; manifests went up to %d, lease epoch %d", where, m.Seq, m.Epoch, highest, lease.Epoch())
		}
		dst = filepath.Join(restores, fmt.Sprintf("trial-%d-after", trial))
		if _, err := reader.Restore(ctx, 0, dst); err != nil {
			t.Fatalf("%srestore after the new commit: %v", where, err)
		}
		if d := diffTrees(readTree(t, dst), snapshotFiles(seed, k)); d != "" {
			t.Fatalf("%srestore after the new commit: %s", where, d)
		}
		prevK = k
		os.RemoveAll(restores)
	}
	t.Logf("%d trials; killed after: %v", trials, landed)
}

func TestCrashConsistencyFileStore(t *testing.T) {
	root := t.TempDir()
	crashTrials(t, 50, crashChild{Store: "file", Root: root}, filetest.Open(t, root))
}

func TestCrashConsistencyVersitygw(t *testing.T) {
	srv := s3test.Start(t, s3test.Versitygw)
	cfg := srv.Config(srv.NewBucket(t), "crash")
	store, err := s3aws.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	crashTrials(t, 10, crashChild{Store: "s3", S3: cfg}, store)
}
