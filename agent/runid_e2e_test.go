package agent_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMisspeltRunIDWarns: a run with no checkpoint in a store that holds
// other runs' names the closest, instead of starting fresh without a word.
func TestMisspeltRunIDWarns(t *testing.T) {
	bin := buildBaton(t)
	dir := t.TempDir()
	store := "file://" + filepath.Join(dir, "store")
	ck := filepath.Join(dir, "ck")
	if err := os.MkdirAll(ck, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ck, "model.pt"), []byte("weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := baseEnv()
	for _, run := range []string{"llama-ft-7", "bert-base"} {
		commit := exec.Command(bin, "checkpoint", "commit", "--store", store, "--run", run, ck)
		commit.Env = env
		if out, err := commit.CombinedOutput(); err != nil {
			t.Fatalf("commit %s: %v\n%s", run, err, out)
		}
	}
	h := host{env: env, dir: dir}
	code, _, stderr := runToEnd(t, bin, h, "--store", store, "--run", "lama-ft-7", "--checkpoint-dir", filepath.Join(dir, "fresh"),
		"--log-format", "text", "--gpu-check=false", "--telemetry-interval=0", "--", "true")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "run lama-ft-7 has no checkpoint, but the store holds checkpoints of 2 other runs; did you mean llama-ft-7?") {
		t.Errorf("no warning naming llama-ft-7:\n%s", stderr)
	}
}

// TestEmptyCodeFails: --code from a prefix that holds nothing stops baton
// run before the trainer starts, naming the prefix.
func TestEmptyCodeFails(t *testing.T) {
	bin := buildBaton(t)
	dir := t.TempDir()
	empty := "file://" + filepath.Join(dir, "no-code-here")
	code, lines, stderr := runToEnd(t, bin, host{env: baseEnv(), dir: dir}, "--store", "file://"+filepath.Join(dir, "store"), "--run", "r1",
		"--checkpoint-dir", filepath.Join(dir, "ck"), "--code", empty, "--code-dir", filepath.Join(dir, "code"),
		"--log-format", "text", "--gpu-check=false", "--telemetry-interval=0", "--", "echo", "trainer ran")
	if code == 0 || len(lines) > 0 || !strings.Contains(stderr, "no-code-here holds nothing to copy") {
		t.Errorf("exit %d, trainer said %q; want a failure naming the empty prefix:\n%s", code, lines, stderr)
	}
}
