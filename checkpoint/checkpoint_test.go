package checkpoint_test

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/s3test"
	"github.com/batonrun/baton/sync/file/filetest"
	"github.com/batonrun/baton/sync/s3aws"
	"github.com/batonrun/baton/sync/storage"
)

// clock is a settable clock for leases.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// newStore returns an empty file store.
func newStore(t *testing.T) storage.Store { return filetest.New(t) }

// eachStore runs fn on the file store and on a real versitygw (skipped, out
// of CI, when the server is not installed).
func eachStore(t *testing.T, fn func(t *testing.T, s storage.Store)) {
	t.Run("file", func(t *testing.T) { fn(t, newStore(t)) })
	t.Run("versitygw", func(t *testing.T) {
		srv := s3test.Start(t, s3test.Versitygw)
		s, err := s3aws.New(t.Context(), srv.Config(srv.NewBucket(t), "ckpt"))
		if err != nil {
			t.Fatal(err)
		}
		fn(t, s)
	})
}

func openRepo(t *testing.T, s storage.Store, holder string, c *clock) *checkpoint.Repo {
	t.Helper()
	r, err := checkpoint.Open(s, checkpoint.Options{
		Run: "run-1", Holder: checkpoint.Holder{ID: holder, Host: holder + "-host", Platform: "test"},
		ChunkSize: 64 << 10, LeaseDuration: time.Minute, Now: c.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o640); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, got, want map[string][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d files, want %d", len(got), len(want))
	}
	for k, w := range want {
		if !bytes.Equal(got[k], w) {
			t.Fatalf("%s differs (%d bytes, want %d)", k, len(got[k]), len(w))
		}
	}
}

func TestCommitRestoreAndDedup(t *testing.T) { eachStore(t, testCommitRestoreAndDedup) }

func testCommitRestoreAndDedup(t *testing.T, s storage.Store) {
	c := &clock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	r := openRepo(t, s, "a", c)
	ctx := t.Context()
	lease, err := r.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	model := randomBytes(1, 1<<20+123)
	writeFile(t, filepath.Join(dir, "model.safetensors"), model)
	writeFile(t, filepath.Join(dir, "optim/state.pt"), randomBytes(2, 300_000))
	writeFile(t, filepath.Join(dir, "empty"), nil)
	m1, err := r.Commit(ctx, lease, dir, map[string]string{"step": "100"})
	if err != nil {
		t.Fatal(err)
	}
	if m1.Seq != 1 || m1.NewBytes != m1.Size {
		t.Fatalf("first commit: seq %d, new %d of %d bytes", m1.Seq, m1.NewBytes, m1.Size)
	}

	// Nothing changed: nothing but a manifest is uploaded.
	m2, err := r.Commit(ctx, lease, dir, nil)
	if err != nil || m2.Seq != 2 || m2.NewBytes != 0 {
		t.Fatalf("second commit: %+v, %v; want seq 2 and nothing new", m2, err)
	}

	// Rewrite one 64 KiB region of the model in place: one chunk is new.
	copy(model[128<<10:], randomBytes(3, 64<<10))
	writeFile(t, filepath.Join(dir, "model.safetensors"), model)
	m3, err := r.Commit(ctx, lease, dir, nil)
	if err != nil || m3.NewBytes != 64<<10 {
		t.Fatalf("third commit: new %d bytes, %v; want exactly one 64 KiB chunk", m3.NewBytes, err)
	}

	dst := filepath.Join(t.TempDir(), "restored")
	got, err := r.Restore(ctx, 0, dst)
	if err != nil || got.Seq != 3 {
		t.Fatalf("restore: %v (seq %v)", err, got)
	}
	sameTree(t, readTree(t, dst), readTree(t, dir))
	fi, err := os.Stat(filepath.Join(dst, "optim/state.pt"))
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("restored mode: %v, %v", fi.Mode(), err)
	}

	list, err := r.List(ctx)
	if err != nil || len(list) != 3 || !list[2].Latest || list[0].Host != "a-host" {
		t.Fatalf("list: %+v, %v", list, err)
	}
}

func TestLeaseFencing(t *testing.T) { eachStore(t, testLeaseFencing) }

func testLeaseFencing(t *testing.T, s storage.Store) {
	c := &clock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	a, b := openRepo(t, s, "a", c), openRepo(t, s, "b", c)
	ctx := t.Context()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "x"), []byte("one"))

	la, err := a.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Acquire(ctx); !errors.Is(err, checkpoint.ErrLeaseHeld) {
		t.Fatalf("second host acquired a held lease: %v", err)
	}
	if _, err := a.Commit(ctx, la, dir, nil); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(2 * time.Minute) // a's lease expires without renewal
	lb, err := b.Acquire(ctx)
	if err != nil {
		t.Fatalf("takeover after expiry: %v", err)
	}
	if lb.Epoch() != la.Epoch()+1 {
		t.Fatalf("takeover epoch %d, want %d", lb.Epoch(), la.Epoch()+1)
	}
	// a wakes up and tries to commit: fenced off, and it learns so.
	if _, err := a.Commit(ctx, la, dir, nil); !errors.Is(err, checkpoint.ErrLeaseLost) || !la.Lost() {
		t.Fatalf("fenced host's commit: %v (lost %v), want ErrLeaseLost", err, la.Lost())
	}
	if err := la.Renew(ctx); !errors.Is(err, checkpoint.ErrLeaseLost) {
		t.Fatalf("fenced host's renewal: %v", err)
	}
	writeFile(t, filepath.Join(dir, "x"), []byte("two"))
	m, err := b.Commit(ctx, lb, dir, nil)
	if err != nil || m.Seq != 2 || m.Epoch != lb.Epoch() {
		t.Fatalf("new holder's commit: %+v, %v", m, err)
	}
	if err := lb.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Acquire(ctx); err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
}

// unseenRewrite is a run whose two checkpoints hold dir/weights.bin, which
// was rewritten between them with other bytes of the same size and its mtime
// put back: a change the commit cannot see.
type unseenRewrite struct {
	r      *checkpoint.Repo
	lease  *checkpoint.Lease
	dir, p string
	mtime  time.Time // weights.bin's mtime, the same at both commits
	m1, m2 *checkpoint.Manifest
}

// newUnseenRewrite commits weights.bin, rewrites it unseen and commits again.
// If settled, the file's mtime is an hour old at the first commit; if not, it
// is the write's own, within a tick of that commit's scan.
func newUnseenRewrite(t *testing.T, settled bool) *unseenRewrite {
	t.Helper()
	c := &clock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	u := &unseenRewrite{r: openRepo(t, newStore(t), "a", c), dir: t.TempDir()}
	ctx := t.Context()
	var err error
	if u.lease, err = u.r.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	u.p = filepath.Join(u.dir, "weights.bin")
	writeFile(t, u.p, randomBytes(5, 200_000))
	if settled { // written well before the scan: not "racily clean"
		hourAgo := time.Now().Add(-time.Hour)
		if err := os.Chtimes(u.p, hourAgo, hourAgo); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(u.p)
	if err != nil {
		t.Fatal(err)
	}
	u.mtime = fi.ModTime()
	if u.m1, err = u.r.Commit(ctx, u.lease, u.dir, nil); err != nil {
		t.Fatal(err)
	}
	writeFile(t, u.p, randomBytes(6, 200_000)) // same size, and the same mtime below
	if err := os.Chtimes(u.p, u.mtime, u.mtime); err != nil {
		t.Fatal(err)
	}
	if u.m2, err = u.r.Commit(ctx, u.lease, u.dir, nil); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestUnchangedFilesAreNotReread changes a file's content behind the
// commit's back, keeping its size and mtime: the commit must take the
// parent's entry without reading it, which shows in the unchanged hash.
func TestUnchangedFilesAreNotReread(t *testing.T) {
	u := newUnseenRewrite(t, true)
	m1, m2 := u.m1, u.m2
	if m2.Files[0].Hash != m1.Files[0].Hash || m2.NewBytes != 0 {
		t.Fatalf("the commit read a file whose size and mtime had not changed (hash %s -> %s, %d new bytes)", m1.Files[0].Hash, m2.Files[0].Hash, m2.NewBytes)
	}
	// Once the mtime moves, the file is read again.
	later := u.mtime.Add(time.Minute)
	if err := os.Chtimes(u.p, later, later); err != nil {
		t.Fatal(err)
	}
	m3, err := u.r.Commit(t.Context(), u.lease, u.dir, nil)
	if err != nil || m3.Files[0].Hash == m1.Files[0].Hash || m3.NewBytes != 200_000 {
		t.Fatalf("after an mtime change: %v, new bytes %d", err, m3.NewBytes)
	}
}

// TestRacilyCleanFilesAreReread: a file whose mtime is within a tick of the
// parent's scan may have been rewritten unseen, so it is read again even
// though its size and mtime match.
func TestRacilyCleanFilesAreReread(t *testing.T) {
	u := newUnseenRewrite(t, false)
	if u.m2.Files[0].Hash == u.m1.Files[0].Hash {
		t.Fatal("a file written within a second of the parent's scan was taken as unchanged")
	}
}

// TestFencedEmptyRunHasNoCheckpoint: a takeover before any commit leaves a
// pointer to checkpoint 0, which readers treat as "no checkpoint".
func TestFencedEmptyRunHasNoCheckpoint(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	r := openRepo(t, newStore(t), "a", c)
	if _, err := r.Acquire(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Restore(t.Context(), 0, t.TempDir()); !errors.Is(err, checkpoint.ErrNoCheckpoint) {
		t.Fatalf("restore of a fenced empty run: %v, want ErrNoCheckpoint", err)
	}
	if list, err := r.List(t.Context()); err != nil || len(list) != 0 {
		t.Fatalf("list of a fenced empty run: %v, %v", list, err)
	}
}
