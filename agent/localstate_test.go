package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/testenv"
	"github.com/batonrun/baton/sync/file/filetest"
)

// TestForkInsideAMountPoint: a checkpoint directory that is a mount point
// (RunPod's /workspace, a Kubernetes volume) cannot be renamed, so a fork
// is set aside inside it; the restore of the newest checkpoint that follows
// (an in-place swap) keeps the fork, and a commit leaves it out.
func TestForkInsideAMountPoint(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=16m"); err != nil {
		msg := fmt.Sprintf("cannot mount a tmpfs on %s (uid %d): %v", dir, os.Geteuid(), err)
		testenv.Unavailable(t, "%s", msg) // CI runs as root, where this must work
	}
	t.Cleanup(func() { syscall.Unmount(dir, unix.MNT_DETACH) })

	// The store's newest checkpoint, committed from elsewhere.
	repo, err := checkpoint.Open(filetest.New(t), checkpoint.Options{Run: "r", Holder: checkpoint.Holder{ID: "other"}, ChunkSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "model.bin"), []byte("newest"), 0o644)
	lease, err := repo.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Commit(context.Background(), lease, src, nil); err != nil {
		t.Fatal(err)
	}

	// This host's own work, which the store lacks.
	os.WriteFile(filepath.Join(dir, "model.bin"), []byte("local work"), 0o644)
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "opt.bin"), []byte("local opt"), 0o644)
	aside, err := setAside(dir, 3, time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, checkpoint.ForkPrefix+"3-20261129T120000Z"); aside != want {
		t.Fatalf("set aside in %s, want %s (inside the mount point)", aside, want)
	}
	if _, err := repo.Restore(context.Background(), 0, dir); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"model.bin": "newest", filepath.Join(filepath.Base(aside), "model.bin"): "local work",
		filepath.Join(filepath.Base(aside), "sub", "opt.bin"): "local opt",
	} {
		if b, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", p, b, err, want)
		}
	}
	_, files, err := checkpoint.DirDigest(dir, nil)
	if err != nil || files != 1 {
		t.Fatalf("a commit would take %d files (%v), want only model.bin: the fork is baton's", files, err)
	}
}
