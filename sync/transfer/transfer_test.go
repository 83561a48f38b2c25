package transfer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/sync/faults"
	"github.com/batonrun/baton/sync/file"
	"github.com/batonrun/baton/sync/storage"
	"github.com/batonrun/baton/sync/transfer"
)

// partSize is small so that a few MiB exercise multipart and ranged paths.
const partSize = storage.MinPartSize

// noWait retries at once: the tests count tries, they do not wait for them.
var noWait = storage.Retry{Attempts: 10, UnreachableAttempts: 3, Sleep: func(ctx context.Context, d time.Duration) error { return ctx.Err() }}

func engine(workers int) *transfer.Engine {
	r := noWait
	return transfer.New(transfer.Options{Workers: workers, PartSize: partSize, Retry: &r})
}

// makeTree writes a dataset: many small files, an empty one, nested
// directories and two files bigger than one part.
func makeTree(t *testing.T, dir string, seed uint64) map[string][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	files := map[string][]byte{"empty": nil}
	for i := range 40 {
		files[fmt.Sprintf("shard-%02d/part %d.bin", i%5, i)] = randomBytes(rng, 1+rng.IntN(200_000))
	}
	files["big/model.safetensors"] = randomBytes(rng, 2*partSize+12345)
	files["big/exact.bin"] = randomBytes(rng, 3*partSize)
	for name, data := range files {
		writeFile(t, filepath.Join(dir, name), data)
	}
	return files
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(rng.Uint64()), byte(rng.Uint64())}).Read(b)
	return b
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// readTree returns every regular file under dir, keyed by slash path.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	got := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		got[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func sameTree(t *testing.T, got, want map[string][]byte) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("missing %s", k)
		} else if !bytes.Equal(g, w) {
			t.Errorf("%s: %d bytes differ from the %d expected", k, len(g), len(w))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected file %s", k)
		}
	}
}

func newFileStore(t *testing.T) *file.Store {
	t.Helper()
	s, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPushPullRoundTrip(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	want := makeTree(t, src, 1)
	store := newFileStore(t)
	ctx := t.Context()

	st, err := engine(8).Push(ctx, src, store)
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != int64(len(want)) || st.SkippedFiles != 0 {
		t.Fatalf("first push: %+v, want %d files", st, len(want))
	}
	st, err = engine(8).Pull(ctx, store, dst)
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != int64(len(want)) {
		t.Fatalf("first pull: %+v, want %d files", st, len(want))
	}
	sameTree(t, readTree(t, dst), want)

	// Nothing changed: nothing moves either way.
	if st, err = engine(8).Pull(ctx, store, dst); err != nil || st.Files != 0 || st.SkippedFiles != int64(len(want)) {
		t.Fatalf("second pull: %+v, %v; want everything skipped", st, err)
	}
	if st, err = engine(8).Push(ctx, src, store); err != nil || st.Files != 0 || st.SkippedFiles != int64(len(want)) {
		t.Fatalf("second push: %+v, %v; want everything skipped", st, err)
	}

	// One object changes in the store: the next pull fetches exactly it.
	changed := []byte("new content of a changed object")
	if _, err := store.Put(ctx, "shard-01/part 1.bin", storage.BytesPayload(changed), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	want["shard-01/part 1.bin"] = changed
	if st, err = engine(8).Pull(ctx, store, dst); err != nil || st.Files != 1 {
		t.Fatalf("pull after a change: %+v, %v; want 1 file", st, err)
	}
	sameTree(t, readTree(t, dst), want)

	// One local file changes: the next push uploads it, and the object that
	// changed in the store above (which now differs from src).
	later := time.Now().Add(time.Minute)
	writeFile(t, filepath.Join(src, "big/exact.bin"), []byte("smaller now"))
	if err := os.Chtimes(filepath.Join(src, "big/exact.bin"), later, later); err != nil {
		t.Fatal(err)
	}
	if st, err = engine(8).Push(ctx, src, store); err != nil || st.Files != 2 {
		t.Fatalf("push after a change: %+v, %v; want 2 files", st, err)
	}
}

func TestTransientFaultsStillFinishByteIdentical(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	want := makeTree(t, src, 2)
	inner := newFileStore(t)
	store := faults.Wrap(inner,
		faults.Rule{Op: "put,upload.part,upload.complete", Err: faults.Transient, Prob: 0.3, Seed: 1},
		faults.Rule{Op: "get", Err: faults.Transient, Prob: 0.1, Seed: 2},
		faults.Rule{Op: "get", ShortRead: 4000, Prob: 0.2, Seed: 3},
		faults.Rule{Op: "list", Err: faults.Transient, Times: 2},
	)
	pushPull(t, store, src, dst, want)
	if store.Injected() < 10 {
		t.Fatalf("only %d faults fired; the test proves nothing", store.Injected())
	}
}

// pushPull pushes src into store with 4 workers, pulls the store into dst
// and checks that dst then holds want.
func pushPull(t *testing.T, store storage.Store, src, dst string, want map[string][]byte) {
	t.Helper()
	ctx := t.Context()
	if _, err := engine(4).Push(ctx, src, store); err != nil {
		t.Fatal(err)
	}
	if _, err := engine(4).Pull(ctx, store, dst); err != nil {
		t.Fatal(err)
	}
	sameTree(t, readTree(t, dst), want)
}

func TestPermanentErrorStopsAtOnce(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, 3)
	inner := newFileStore(t)
	if _, err := engine(4).Push(t.Context(), src, inner); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []faults.Kind{faults.Permission, faults.Auth, faults.NoBucket} {
		t.Run(kind.Error(), func(t *testing.T) {
			store := faults.Wrap(inner, faults.Rule{Op: "get", Err: kind})
			_, err := engine(4).Pull(t.Context(), store, t.TempDir())
			if !errors.Is(err, kind.Sentinel()) {
				t.Fatalf("pull error %v, want %v", err, kind.Sentinel())
			}
			// Each of the 4 workers may have sent one request before the
			// first failure cancelled the run; none was retried.
			if n := store.Calls("get"); n > 4 {
				t.Fatalf("%d gets for a permanent error, want at most one per worker", n)
			}
		})
	}
}

func TestRetriesAreBounded(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a"), []byte("a"))
	store := faults.Wrap(newFileStore(t), faults.Rule{Op: "put", Err: faults.Unreachable})
	_, err := engine(1).Push(t.Context(), src, store)
	if !errors.Is(err, storage.ErrUnreachable) {
		t.Fatalf("push error %v, want unreachable", err)
	}
	if n := store.Calls("put"); n != noWait.UnreachableAttempts {
		t.Fatalf("%d tries against an unreachable store, want %d", n, noWait.UnreachableAttempts)
	}
}

// TestInterruptedPullLeavesNoTruncatedFile fails a pull part-way, checks that
// every file under its final name is whole, then finishes the job.
func TestInterruptedPullLeavesNoTruncatedFile(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	want := makeTree(t, src, 4)
	inner := newFileStore(t)
	if _, err := engine(4).Push(t.Context(), src, inner); err != nil {
		t.Fatal(err)
	}
	for _, after := range []int{3, 10} {
		store := faults.Wrap(inner, faults.Rule{Op: "get", After: after, Err: faults.IO})
		if _, err := engine(4).Pull(t.Context(), store, dst); !errors.Is(err, storage.ErrIO) {
			t.Fatalf("pull failing after %d gets: error %v, want the injected I/O error", after, err)
		}
		for name, data := range readTree(t, dst) {
			if strings.HasSuffix(name, ".baton-partial") {
				t.Errorf("after %d gets: partial file %s left behind", after, name)
				continue
			}
			if !bytes.Equal(data, want[name]) {
				t.Errorf("after %d gets: %s is under its final name but has %d bytes, want %d", after, name, len(data), len(want[name]))
			}
		}
	}
	st, err := engine(4).Pull(t.Context(), inner, dst)
	if err != nil {
		t.Fatal(err)
	}
	if st.SkippedFiles == 0 {
		t.Fatal("the re-run fetched everything again; files finished before the interruption should be kept")
	}
	sameTree(t, readTree(t, dst), want)
}

func TestCancelledPullStops(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, 5)
	inner := newFileStore(t)
	if _, err := engine(4).Push(t.Context(), src, inner); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	store := faults.Wrap(inner, faults.Rule{Op: "get", After: 5, Delay: time.Hour})
	done := make(chan error)
	go func() {
		_, err := engine(2).Pull(ctx, store, t.TempDir())
		done <- err
	}()
	for store.Calls("get") < 6 {
		runtimeGosched()
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled pull returned %v", err)
	}
}

// hostileStore lists a key that would escape the target directory.
type hostileStore struct {
	storage.Store
	key string
}

func (h hostileStore) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if err := fn(storage.ObjectInfo{Key: "fine", Size: 1, ETag: "x"}); err != nil {
		return err
	}
	return fn(storage.ObjectInfo{Key: h.key, Size: 1, ETag: "y"})
}

func (h hostileStore) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, storage.ObjectInfo, error) {
	return io.NopCloser(strings.NewReader("x")), storage.ObjectInfo{Key: key, Size: 1, ETag: "x"}, nil
}

func TestPullRefusesEscapingKeys(t *testing.T) {
	for _, key := range []string{"../escape", "/etc/passwd", "a/../../b", "a/./b", "a//b"} {
		t.Run(key, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "dst")
			_, err := engine(2).Pull(t.Context(), hostileStore{Store: newFileStore(t), key: key}, dst)
			if err == nil || !strings.Contains(err.Error(), "refusing") {
				t.Fatalf("pull of key %q: error %v, want a refusal", key, err)
			}
			entries, _ := os.ReadDir(parent)
			if len(entries) != 0 {
				t.Fatalf("a refused pull wrote %d entries", len(entries))
			}
		})
	}
}

// TestEveryRequestRetries fails the first request of each kind on each key
// (a listing's prefix, an upload's parts all on their file's key) with a
// transient error and cuts the second read of each object short: push and
// pull still finish, byte for byte. A request that does not go through the
// retrying store fails here.
func TestEveryRequestRetries(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	want := makeTree(t, src, 5)
	first := func(op string) faults.Rule {
		seen := map[string]bool{}
		return faults.Rule{Op: op, Err: faults.Transient, Key: func(key string) bool {
			fire := !seen[key]
			seen[key] = true
			return fire
		}}
	}
	second := map[string]int{}
	store := faults.Wrap(newFileStore(t),
		first("list"), first("put"), first("get"), first("upload"), first("upload.part"), first("upload.complete"),
		faults.Rule{Op: "get", ShortRead: 1000, Key: func(key string) bool { second[key]++; return second[key] == 2 }},
	)
	pushPull(t, store, src, dst, want)
	// A failure for each of the 2 listings, 40 small files' puts and gets,
	// and 2 big files' start, parts and completion.
	if n := store.Injected(); n < 2+2*40+2*3 {
		t.Fatalf("only %d faults fired", n)
	}
}
