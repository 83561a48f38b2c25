package checkpoint_test

// A restore that fails (a corrupt or missing chunk, the network, a full
// disk) leaves nothing half-restored: the target is as it was, no staging
// directory remains, and the error says what happened. Passing faults do
// not fail it.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/testenv"
	"github.com/batonrun/baton/sync/faults"
	"github.com/batonrun/baton/sync/storage"
)

func chunkKey(hash string) string { return "chunks/" + hash[:2] + "/" + hash }

func TestRestoreFailures(t *testing.T) {
	type env struct {
		store storage.Store
		chunk string // a chunk of model.bin, its third
	}
	cases := []struct {
		name string
		// setup breaks the store (or wraps it with faults) and returns the
		// store to restore from.
		setup func(t *testing.T, e env) storage.Store
		// ok: the restore must succeed despite the faults.
		ok bool
		// is and want: the error wraps is and contains want.
		is   error
		want string
	}{
		{name: "chunk overwritten with other bytes of the same size", setup: func(t *testing.T, e env) storage.Store {
			putRaw(t, e.store, chunkKey(e.chunk), content(64<<10, 99))
			return e.store
		}, is: checkpoint.ErrDamaged, want: "does not match its hash"},
		{name: "chunk overwritten with a shorter object", setup: func(t *testing.T, e env) storage.Store {
			putRaw(t, e.store, chunkKey(e.chunk), []byte("garbage"))
			return e.store
		}, is: checkpoint.ErrDamaged, want: "is 7 bytes, the manifest says 65536"},
		{name: "chunk missing", setup: func(t *testing.T, e env) storage.Store {
			if err := e.store.Delete(context.Background(), chunkKey(e.chunk)); err != nil {
				t.Fatal(err)
			}
			return e.store
		}, is: checkpoint.ErrDamaged, want: "missing"},
		{name: "permission denied on one chunk", setup: func(t *testing.T, e env) storage.Store {
			return faults.Wrap(e.store, faults.Rule{Op: faults.OpGet, Key: isKey(chunkKey(e.chunk)), Err: faults.Permission})
		}, is: storage.ErrPermission, want: e2eChunkName},
		{name: "network down on every chunk", setup: func(t *testing.T, e env) storage.Store {
			return faults.Wrap(e.store, faults.Rule{Op: faults.OpGet, Prefix: "chunks/", Err: faults.Unreachable})
		}, is: storage.ErrUnreachable, want: "gave up after"},
		{name: "transient fault that does not pass", setup: func(t *testing.T, e env) storage.Store {
			return faults.Wrap(e.store, faults.Rule{Op: faults.OpGet, Key: isKey(chunkKey(e.chunk)), Err: faults.Transient})
		}, is: storage.ErrTransient, want: "gave up after 5 tries"},
		{name: "transient faults, three times", ok: true, setup: func(t *testing.T, e env) storage.Store {
			return faults.Wrap(e.store, faults.Rule{Op: faults.OpGet, Prefix: "chunks/", Err: faults.Transient, Times: 3})
		}},
		{name: "transient faults on one chunk, four times", ok: true, setup: func(t *testing.T, e env) storage.Store {
			return faults.Wrap(e.store, faults.Rule{Op: faults.OpGet, Key: isKey(chunkKey(e.chunk)), Err: faults.Transient, Times: 4})
		}},
		{name: "bodies cut short", ok: true, setup: func(t *testing.T, e env) storage.Store {
			return faults.Wrap(e.store, faults.Rule{Op: faults.OpGet, Prefix: "chunks/", ShortRead: 1000, Times: 3})
		}},
	}
	eachStore(t, func(t *testing.T, store storage.Store) {
		ctx := t.Context()
		clk := newSyncClock()
		w, lease := acquireOn(t, store, "a", clk.now)
		src := t.TempDir()
		writeTree(t, src, map[string][]byte{"model.bin": content(5*64<<10+123, 1), "optim.bin": content(200_000, 2)})
		m, err := w.Commit(ctx, lease, src, nil)
		if err != nil {
			t.Fatal(err)
		}
		if m.Files[0].Path != "model.bin" {
			t.Fatalf("files %+v", m.Files)
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				// Each case starts from an intact store: the chunk an
				// earlier case broke is put back.
				chunk := m.Files[0].Chunks[2]
				putRaw(t, store, chunkKey(chunk), content(5*64<<10+123, 1)[2*64<<10:3*64<<10])
				e := env{store: store, chunk: chunk}
				s := tc.setup(t, e)
				r := openOn(t, s, "", clk.now)

				root := t.TempDir()
				target := filepath.Join(root, "work", "ckpt")
				writeTree(t, target, map[string][]byte{"old.txt": []byte("precious"), "sub/keep.bin": content(70_000, 3)})
				before := fsState(t, root)
				got, err := r.Restore(ctx, 0, target)
				if tc.ok {
					if err != nil {
						t.Fatalf("restore: %v", err)
					}
					if fs, ok := s.(*faults.Store); ok && fs.Injected() == 0 {
						t.Fatal("no fault was injected")
					}
					if d := diffTrees(readTree(t, target), readTree(t, src)); d != "" {
						t.Fatalf("restore: %s", d)
					}
					if entries, err := os.ReadDir(filepath.Dir(target)); err != nil || len(entries) != 1 {
						t.Fatalf("the parent holds %v, want the target only (%v)", entries, err)
					}
					return
				}
				if err == nil {
					t.Fatalf("restore succeeded (checkpoint %d)", got.Seq)
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Errorf("error %v; want one wrapping %v", err, tc.is)
				}
				if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("error %q does not say %q", err, tc.want)
				}
				if !strings.Contains(err.Error(), "model.bin") {
					t.Errorf("error %q does not name the file", err)
				}
				sameState(t, "the target and its parent after the failed restore", fsState(t, root), before)
			})
		}
	})
}

// e2eChunkName is what every error about the broken chunk names: its file.
const e2eChunkName = "model.bin"

func isKey(key string) func(string) bool { return func(k string) bool { return k == key } }

func putRaw(t *testing.T, s storage.Store, key string, b []byte) {
	t.Helper()
	if _, err := s.Put(context.Background(), key, storage.BytesPayload(b), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreDiskFull restores a 5 MiB checkpoint onto a 2 MiB tmpfs: the
// error says the disk is full, and the file system is left as it was, its
// space included. It needs root to mount the tmpfs; in CI
// (BATON_REQUIRE_ALL=1) not being able to is a failure.
func TestRestoreDiskFull(t *testing.T) {
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=2m"); err != nil {
		msg := fmt.Sprintf("cannot mount a 2 MiB tmpfs on %s (uid %d): %v", mnt, os.Geteuid(), err)
		testenv.Unavailable(t, "%s", msg) // CI runs as root, where this must work
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmounting %s: %v", mnt, err)
		}
	})
	ctx := t.Context()
	store := newStore(t)
	w, lease := acquireOn(t, store, "a", newSyncClock().now)
	src := commitTree(t, w, lease, map[string][]byte{"model.bin": content(5<<20, 1), "config.json": []byte("{}")})

	target := filepath.Join(mnt, "ckpt")
	writeTree(t, target, map[string][]byte{"old.txt": []byte("precious"), "keep.bin": content(300_000, 2)})
	before := fsState(t, mnt)
	var st0 syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st0); err != nil {
		t.Fatal(err)
	}
	_, err := w.Restore(ctx, 0, target)
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("restore onto a full disk: %v; want ENOSPC", err)
	}
	t.Logf("restore onto a full disk: %v", err)
	sameState(t, "the tmpfs after the failed restore", fsState(t, mnt), before)
	var st1 syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st1); err != nil {
		t.Fatal(err)
	}
	if st1.Bfree != st0.Bfree || st1.Ffree != st0.Ffree {
		t.Fatalf("the failed restore holds space: %d free blocks and %d inodes, were %d and %d", st1.Bfree, st1.Ffree, st0.Bfree, st0.Ffree)
	}
	// With room, the same restore goes through.
	dst := filepath.Join(t.TempDir(), "ckpt")
	if _, err := w.Restore(ctx, 0, dst); err != nil {
		t.Fatal(err)
	}
	if d := diffTrees(readTree(t, dst), readTree(t, src)); d != "" {
		t.Fatal(d)
	}
	if b, _ := os.ReadFile(filepath.Join(target, "old.txt")); !bytes.Equal(b, []byte("precious")) {
		t.Fatalf("old.txt: %q", b)
	}
}
