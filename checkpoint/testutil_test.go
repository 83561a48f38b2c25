package checkpoint_test

// Helpers shared by the crash, fencing, changed-directory, hostile-manifest
// and restore-failure tests.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/sync/faults"
	"github.com/batonrun/baton/sync/storage"
)

const testRun = "run-1"

// syncClock is a settable clock that goroutines may read while a test (or a
// store hook) moves it.
type syncClock struct{ ns atomic.Int64 }

func newSyncClock() *syncClock {
	c := &syncClock{}
	c.ns.Store(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *syncClock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *syncClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// fastRetry retries transient errors at once, so that the tests that inject
// them take no time.
func fastRetry() *storage.Retry {
	return &storage.Retry{Attempts: 5, UnreachableAttempts: 2, Base: time.Microsecond, Max: time.Millisecond}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// openOn opens run testRun in s for holder (may be "" for a reader) with
// 64 KiB chunks, a one-minute lease and fast retries.
func openOn(t testing.TB, s storage.Store, holder string, now func() time.Time) *checkpoint.Repo {
	t.Helper()
	return openWith(t, s, holder, func(o *checkpoint.Options) { o.Now = now })
}

// openWith is openOn with the options as set changes them.
func openWith(t testing.TB, s storage.Store, holder string, set func(*checkpoint.Options)) *checkpoint.Repo {
	t.Helper()
	opts := checkpoint.Options{
		Run: testRun, ChunkSize: 64 << 10, LeaseDuration: time.Minute,
		Retry: fastRetry(), Logger: quiet, Workers: 4,
	}
	set(&opts)
	if holder != "" {
		opts.Holder = checkpoint.Holder{ID: holder, Host: holder + "-host", Platform: "test"}
	}
	r, err := checkpoint.Open(s, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// acquireOn opens run testRun in s for holder as openOn does and takes its
// lease.
func acquireOn(t testing.TB, s storage.Store, holder string, now func() time.Time) (*checkpoint.Repo, *checkpoint.Lease) {
	t.Helper()
	r := openOn(t, s, holder, now)
	lease, err := r.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return r, lease
}

// commitTree commits files as the next checkpoint of the run, from a fresh
// directory, and returns the directory.
func commitTree(t testing.TB, r *checkpoint.Repo, lease *checkpoint.Lease, files map[string][]byte) string {
	t.Helper()
	src := t.TempDir()
	writeTree(t, src, files)
	if _, err := r.Commit(t.Context(), lease, src, nil); err != nil {
		t.Fatal(err)
	}
	return src
}

// startChild starts cmd with its stderr gathered in the returned buffer and
// a stdin that is never written (a blocking child waits on it), and returns
// a pipe of its stdout.
func startChild(t testing.TB, cmd *exec.Cmd) (stdout io.Reader, stderr *bytes.Buffer) {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close() }) // Wait closes it too, once it ran
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr = &bytes.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return out, stderr
}

// hook is a faults rule that never fires: its Key func calls fn with the key
// of every call of op ("" for any), before the call reaches the store. fn
// runs with the faults store's lock held and must not call that store (it
// may call the inner one).
func hook(op string, fn func(key string)) faults.Rule {
	return faults.Rule{
		Op:    op,
		Key:   func(key string) bool { fn(key); return false },
		Delay: time.Nanosecond, // a rule needs a fault; this one is never served
	}
}

// content returns n deterministic pseudo-random bytes for the given labels.
func content(n int, labels ...uint64) []byte {
	var key [32]byte
	h := sha256.New()
	for _, l := range labels {
		binary.Write(h, binary.LittleEndian, l)
	}
	copy(key[:], h.Sum(nil))
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// rawObject returns the bytes and ETag stored under key, or nil and "" if
// there is no such object.
func rawObject(t testing.TB, s storage.Store, key string) ([]byte, string) {
	t.Helper()
	rc, info, err := s.Get(context.Background(), key, 0, -1)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ""
	}
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return b, info.ETag
}

func latestKey() string            { return "runs/" + testRun + "/latest.json" }
func leaseKey() string             { return "runs/" + testRun + "/lease.json" }
func manifestKey(seq int64) string { return fmt.Sprintf("runs/%s/manifests/%012d.json", testRun, seq) }

// readJSON parses the object under key straight from the store; ok is
// false if there is none.
func readJSON[T any](t testing.TB, s storage.Store, key string) (v T, ok bool) {
	t.Helper()
	b, _ := rawObject(t, s, key)
	if b == nil {
		return v, false
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return v, true
}

// readLatest parses latest.json straight from the store; ok is false if
// there is none.
func readLatest(t testing.TB, s storage.Store) (checkpoint.Latest, bool) {
	t.Helper()
	return readJSON[checkpoint.Latest](t, s, latestKey())
}

// readLease parses lease.json straight from the store; ok is false if there
// is none.
func readLease(t testing.TB, s storage.Store) (checkpoint.LeaseRecord, bool) {
	t.Helper()
	return readJSON[checkpoint.LeaseRecord](t, s, leaseKey())
}

// listKeys returns every key under prefix, sorted.
func listKeys(t testing.TB, s storage.Store, prefix string) []string {
	t.Helper()
	var keys []string
	err := s.List(context.Background(), prefix, func(o storage.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("list %s: %v", prefix, err)
	}
	return keys
}

// fsState describes everything under root without following symbolic
// links: each path maps to "dir", "link -> TARGET" or "file MODE SHA256".
// Two equal states mean nothing was created, removed or written.
func fsState(t testing.TB, root string) map[string]string {
	t.Helper()
	state := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			state[rel] = "link -> " + target
		case d.IsDir():
			state[rel] = "dir"
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			state[rel] = fmt.Sprintf("file %v %d %s", fi.Mode(), len(b), hex.EncodeToString(sum[:8]))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return state
}

// sameState fails the test with a diff unless two fsStates are equal.
func sameState(t testing.TB, what string, got, want map[string]string) {
	t.Helper()
	if maps.Equal(got, want) {
		return
	}
	var diff []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok {
			diff = append(diff, fmt.Sprintf("  - %s (%s) vanished", k, want[k]))
		} else if g != want[k] {
			diff = append(diff, fmt.Sprintf("  ~ %s: %s, was %s", k, g, want[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			diff = append(diff, fmt.Sprintf("  + %s (%s) appeared", k, got[k]))
		}
	}
	t.Fatalf("%s changed:\n%s", what, strings.Join(diff, "\n"))
}

// writeTree writes files (relative slash path -> content) under dir.
func writeTree[T ~string | ~[]byte](t testing.TB, dir string, files map[string]T) {
	t.Helper()
	for p, b := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// setMTimes sets the mtime of every file under dir to at, so that any later
// write is seen as a change whatever the file system's timestamp
// granularity.
func setMTimes(t testing.TB, dir string, at time.Time) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chtimes(p, at, at)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// diffTrees says how two trees (as readTree returns them) differ; "" if
// they are identical.
func diffTrees(got, want map[string][]byte) string {
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			return k + " missing"
		}
		if !bytes.Equal(g, w) {
			return fmt.Sprintf("%s differs (%d bytes, want %d)", k, len(g), len(w))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			return k + " unexpected"
		}
	}
	return ""
}

// clearRuns deletes every run of the store (its chunks stay), so that one
// store can serve several independent cases.
func clearRuns(t testing.TB, s storage.Store) {
	t.Helper()
	for _, key := range listKeys(t, s, "runs/") {
		if err := s.Delete(context.Background(), key); err != nil {
			t.Fatal(err)
		}
	}
}
