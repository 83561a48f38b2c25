package checkpoint_test

// Restores into a directory that is a mount point (a RunPod network volume
// at /workspace, a Kubernetes volume): it cannot be renamed, so the restore
// stages inside it and swaps its entries. It must work, stay all-or-nothing,
// and need no more free space than a restore beside the target.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/testenv"
	"github.com/batonrun/baton/internal/testfs"
	"github.com/batonrun/baton/sync/storage"
)

// mountTmpfs mounts a tmpfs of size bytes on dir, which must exist, and
// unmounts it when the test ends. It needs root: elsewhere the test is
// skipped, except in CI (BATON_REQUIRE_ALL=1), where that is a failure.
func mountTmpfs(t *testing.T, dir string, size int64) {
	t.Helper()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		msg := fmt.Sprintf("cannot mount a tmpfs on %s (uid %d): %v", dir, os.Geteuid(), err)
		testenv.Unavailable(t, "%s", msg) // CI runs as root, where this must work
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
}

// resizeTmpfs changes the size of the tmpfs mounted on dir.
func resizeTmpfs(t *testing.T, dir string, size int64) {
	t.Helper()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT, fmt.Sprintf("size=%d", size)); err != nil {
		t.Fatalf("resizing the tmpfs on %s to %d bytes: %v", dir, size, err)
	}
}

// usedBytes is what the file system of dir has in use.
func usedBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize
}

// isMountRoot says whether dir is the root of a mount.
func isMountRoot(t *testing.T, dir string) bool {
	t.Helper()
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, dir, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_TYPE, &stx); err != nil {
		t.Fatal(err)
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		t.Skip("this kernel's statx does not say whether a directory is a mount's root")
	}
	return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
}

func TestRestoreIntoMountPoint(t *testing.T) { eachStore(t, testRestoreIntoMountPoint) }

func testRestoreIntoMountPoint(t *testing.T, store storage.Store) {
	ctx := t.Context()
	w, lease := acquireOn(t, store, "a", newSyncClock().now)
	files := map[string][]byte{
		"model.bin": content(5*64<<10+123, 1), "optim/state.pt": content(200_000, 2),
		"empty": nil, "config.json": []byte(`{"step": 100}`),
	}
	src := commitTree(t, w, lease, files)

	root := t.TempDir()
	target := filepath.Join(root, "ckpt")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	mountTmpfs(t, target, 64<<20)
	writeTree(t, target, map[string][]byte{
		"old.txt": []byte("precious"), "sub/keep.bin": content(70_000, 3), "model.bin": content(1000, 4),
	})
	if err := os.Mkdir(filepath.Join(target, "lost+found"), 0o700); err != nil {
		t.Fatal(err)
	}

	// A damaged chunk stops the restore before the swap: the mount point
	// is as it was, and nothing is left in it or beside it.
	m, err := w.Manifest(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	chunk := m.Files[slices.IndexFunc(m.Files, func(f checkpoint.File) bool { return f.Path == "model.bin" })].Chunks[1]
	good, _ := rawObject(t, store, chunkKey(chunk))
	putRaw(t, store, chunkKey(chunk), content(64<<10, 99))
	before := fsState(t, root)
	if _, err := w.Restore(ctx, 0, target); !errors.Is(err, checkpoint.ErrDamaged) {
		t.Fatalf("restore with a damaged chunk: %v, want ErrDamaged", err)
	}
	sameState(t, "the mount point after a failed restore", fsState(t, root), before)
	putRaw(t, store, chunkKey(chunk), good)

	for round := range 2 { // into the old content, then over the restored checkpoint
		if _, err := w.Restore(ctx, 0, target); err != nil {
			t.Fatalf("restore %d into a mount point: %v", round, err)
		}
		if d := diffTrees(readTree(t, target), readTree(t, src)); d != "" {
			t.Fatalf("restore %d: %s", round, d)
		}
		if !isMountRoot(t, target) {
			t.Fatalf("restore %d: %s is no longer a mount point", round, target)
		}
		// lost+found stays at the root of the mount, and nothing else of
		// the old content or of the restore remains.
		if got, want := testfs.Names(t, target), []string{"config.json", "empty", "lost+found", "model.bin", "optim"}; !slices.Equal(got, want) {
			t.Fatalf("restore %d: the mount point holds %q, want %q", round, got, want)
		}
		if got := testfs.Names(t, root); !slices.Equal(got, []string{"ckpt"}) {
			t.Fatalf("restore %d: its parent holds %q, want only ckpt", round, got)
		}
	}
}

// spaceCheckpoint is a checkpoint of the usual shape: a model, an optimizer
// state and small files.
func spaceCheckpoint(label uint64) map[string][]byte {
	files := map[string][]byte{
		"model.safetensors": content(6<<20+123, label, 1),
		"optimizer.pt":      content(3<<20, label, 2),
		"config.json":       content(300, label, 3),
	}
	for i := range 20 {
		files[fmt.Sprintf("tokenizer/part-%02d.json", i)] = content(3000, label, 4, uint64(i))
	}
	return files
}

func treeSize(files map[string][]byte) int64 {
	var n int64
	for _, b := range files {
		n += int64(len(b))
	}
	return n
}

// TestRestoreSpace restores over an older checkpoint of the same shape on a
// file system whose free space is 1.10 times the new checkpoint: beside the
// target and into a mount point, the restore fits. With
// BATON_MEASURE_SPACE=1 it also searches for the least free space each
// needs and logs it as a factor of the checkpoint's size.
func TestRestoreSpace(t *testing.T) {
	ctx := t.Context()
	store := newStore(t)
	w, lease := acquireOn(t, store, "a", newSyncClock().now)
	oldFiles, newFiles := spaceCheckpoint(1), spaceCheckpoint(2)
	commitTree(t, w, lease, oldFiles)
	newSrc := commitTree(t, w, lease, newFiles)
	size := treeSize(newFiles)
	const factor = 1.10

	for _, mode := range []string{"beside", "mount point"} {
		t.Run(mode, func(t *testing.T) {
			root := t.TempDir()
			vol, target := filepath.Join(root, "vol"), filepath.Join(root, "vol", "ckpt")
			if mode == "mount point" {
				vol = target
			}
			if err := os.MkdirAll(vol, 0o755); err != nil {
				t.Fatal(err)
			}
			mountTmpfs(t, vol, 256<<20)
			// try restores the old checkpoint with room, then the new one
			// with free bytes free.
			try := func(free int64) error {
				resizeTmpfs(t, vol, 256<<20)
				if _, err := w.Restore(ctx, 1, target); err != nil {
					t.Fatalf("restoring the old checkpoint: %v", err)
				}
				resizeTmpfs(t, vol, usedBytes(t, vol)+free)
				_, err := w.Restore(ctx, 2, target)
				return err
			}
			if err := try(int64(factor * float64(size))); err != nil {
				t.Fatalf("restore over an older checkpoint with %.2f× the checkpoint's size free: %v", factor, err)
			}
			if d := diffTrees(readTree(t, target), readTree(t, newSrc)); d != "" {
				t.Fatal(d)
			}
			if os.Getenv("BATON_MEASURE_SPACE") != "1" {
				return
			}
			const page = 4096
			lo, hi := size/page, int64(1.5*float64(size))/page+1 // lo fails, hi fits
			if try(lo*page) == nil {
				t.Logf("%s: fits in %d bytes free", mode, lo*page)
				return
			}
			for hi-lo > 1 {
				mid := (lo + hi) / 2
				if try(mid*page) == nil {
					hi = mid
				} else {
					lo = mid
				}
			}
			t.Logf("%s: the least free space that fits is %d bytes, %.4f× the checkpoint's %d bytes", mode, hi*page, float64(hi*page)/float64(size), size)
		})
	}
}
