package agent_test

import (
	"os"
	"path/filepath"
	"testing"
)

// TestResumedRunIsNotDone: a run whose trainer exited 0 is marked done
// (runs/<run>/done.json, which baton watch reads); a host that takes the
// run again (a run resumed to train further, a stopped Vast instance that
// starts) removes the mark while its trainer runs, and marks the run done
// again when the trainer exits 0.
func TestResumedRunIsNotDone(t *testing.T) {
	t.Parallel()
	bin := buildBaton(t)
	root := t.TempDir()
	store := filepath.Join(root, "store")
	done := filepath.Join(store, "runs", "again", "done.json")
	// The trainer exits 3 if the run is marked done while it runs.
	script := "import os, sys; sys.exit(3 if os.path.exists(sys.argv[1]) else 0)"
	h := host{env: baseEnv("HOME=" + filepath.Join(root, "home")), dir: root}
	for i := range 2 {
		code, lines, stderr := runToEnd(t, bin, h, "--store", "file://"+store, "--run", "again",
			"--checkpoint-dir", filepath.Join(root, "ckpt"), "--checkpoint-interval", "0", "--gpu-check=false",
			"--", "python3", "-c", script, done)
		if code != 0 {
			t.Fatalf("run %d: exit %d (3: the run was still marked done while it ran)\n%q\n%s", i+1, code, lines, stderr)
		}
		if _, err := os.Stat(done); err != nil {
			t.Fatalf("run %d ended with the trainer's exit 0, and the run is not marked done: %v", i+1, err)
		}
	}
}
