package agent_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/sync/file"
)

// TestMissingGPUsRefusedBeforeTheLease: a platform that promised a GPU
// (RUNPOD_GPU_COUNT) on a host with no driver (this machine) gets exit 77
// before any lease is taken; --gpu-check=false runs anyway.
func TestMissingGPUsRefusedBeforeTheLease(t *testing.T) {
	l := newLifecycle(t, false)
	h := l.host("RUNPOD_POD_ID=zero", "RUNPOD_GPU_COUNT=1")
	code, lines, stderr := runToEnd(t, l.bin, h, l.args(h, 5)...)
	if code != 77 || len(lines) != 0 || !strings.Contains(stderr, "the platform promised 1 GPUs, but no NVIDIA driver") {
		t.Fatalf("exit %d, %d trainer lines, want 77 and none:\n%s", code, len(lines), stderr)
	}
	storeDir := strings.TrimPrefix(l.store, "file://")
	if _, err := os.Stat(filepath.Join(storeDir, "runs", "life", "lease.json")); !os.IsNotExist(err) {
		t.Fatalf("a lease was taken (%v)", err)
	}
	if first, _ := l.train(h, 5, "--gpu-check=false"); first != "starting fresh" {
		t.Fatalf("with --gpu-check=false: %q", first)
	}
}

// TestBadHostRefused: a machine the run gave up before (recorded in the
// store) is refused at once with 77; baton checkpoint hosts lists it, and
// once forgotten the machine trains again.
func TestBadHostRefused(t *testing.T) {
	l := newLifecycle(t, false)
	storeDir := strings.TrimPrefix(l.store, "file://")
	s, err := file.New(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := checkpoint.Open(s, checkpoint.Options{Run: "life"})
	if err != nil {
		t.Fatal(err)
	}
	bad := checkpoint.BadHost{Platform: "runpod", Machine: "host server-9", Reason: "GPU GPU-1: XID 79", Status: 77, At: time.Now()}
	if err := repo.RecordBadHost(context.Background(), bad); err != nil {
		t.Fatal(err)
	}
	h := l.host("RUNPOD_POD_ID=p1", "RUNPOD_POD_HOSTNAME=server-9")
	code, lines, stderr := runToEnd(t, l.bin, h, l.args(h, 5)...)
	id := checkpoint.BadHostID("runpod", "host server-9")
	if code != 77 || len(lines) != 0 || !strings.Contains(stderr, "was given up for run life") || !strings.Contains(stderr, id) {
		t.Fatalf("exit %d, %d trainer lines, want 77 naming the record %s:\n%s", code, len(lines), id, stderr)
	}
	other := l.host("RUNPOD_POD_ID=p2", "RUNPOD_POD_HOSTNAME=server-10")
	if first, _ := l.train(other, 5); first != "starting fresh" {
		t.Fatalf("another server: %q", first)
	}
	hosts := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(l.bin, append([]string{"checkpoint", "hosts", "--store", l.store, "--run", "life"}, args...)...)
		cmd.Env = baseEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("checkpoint hosts %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := hosts(); !strings.Contains(out, id) || !strings.Contains(out, "XID 79") {
		t.Fatalf("checkpoint hosts does not list the bad machine:\n%s", out)
	}
	hosts("--forget", id)
	if first, _ := l.train(h, 10); first != "resumed from step=5" {
		t.Fatalf("after --forget: %q", first)
	}
}
