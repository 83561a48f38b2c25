package agent_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/testfs"
)

// TestRunRemovesRestoreLeftovers: baton run on a checkpoint directory that a
// killed restore left mid-swap (an in-place swap whose journal was written,
// so it rolls forward) and with a staging directory beside it removes those
// leftovers before anything looks at the directory, and nothing else.
func TestRunRemovesRestoreLeftovers(t *testing.T) {
	bin, trainer := buildBaton(t), trainerPath(t)
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt")
	const hexA, hexB = "0123456789abcdef", "fedcba9876543210"
	for p, c := range map[string]string{
		"ckpt/.baton-restore-" + hexA + "/new.txt": "new",
		"ckpt/.baton-old-" + hexA + "/old.txt":     "old",
		"ckpt/.baton-swap-" + hexA:                 "baton restore swap\nstaging .baton-restore-" + hexA + "\nold .baton-old-" + hexA + "\n",
		".ckpt.baton-restore-" + hexB + "/x":       "a killed restore's staging",
		"ckpt.baton-old-backup/y":                  "the user's",
	} {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, _, stderr := runToEnd(t, bin, host{env: baseEnv()}, "--store", "file://"+filepath.Join(dir, "store"), "--run", "leftovers",
		"--checkpoint-dir", ckpt, "--checkpoint-interval", "0", "--",
		"python3", trainer, "--steps", "2", "--step-seconds", "0", "--save-every", "1")
	if code != 0 {
		t.Fatalf("baton run: exit %d\n%s", code, stderr)
	}
	if b, err := os.ReadFile(filepath.Join(ckpt, "new.txt")); err != nil || string(b) != "new" {
		t.Fatalf("the swap was not rolled forward: new.txt %q, %v\n%s", b, err, stderr)
	}
	for _, n := range testfs.Names(t, ckpt) {
		if n == "old.txt" || len(n) > 7 && n[:7] == ".baton-" && n != checkpoint.StateFile {
			t.Errorf("the checkpoint directory still holds %s", n)
		}
	}
	if got, want := testfs.Names(t, dir), []string{".ckpt.baton-lock", "ckpt", "ckpt.baton-old-backup", "store"}; !slices.Equal(got, want) {
		t.Errorf("beside the checkpoint directory: %q, want %q", got, want)
	}
}
