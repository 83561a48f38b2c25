package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOnlyPublishedCheckpointsAreShown plants a manifest above latest.json
// (a commit fenced before it published) and checks that ls hides it and
// show and restore refuse it; then removes the manifest latest.json names
// and checks that ls says so and exits 1 instead of listing nothing.
func TestOnlyPublishedCheckpointsAreShown(t *testing.T) {
	root := t.TempDir()
	environ := checkpointEnv("file://"+root, "run-1")
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"a.bin": randomData(1, 1000)}, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	mustRun(t, environ, "checkpoint", "commit", src)
	manifests := filepath.Join(root, "runs", "run-1", "manifests")
	one, err := os.ReadFile(filepath.Join(manifests, "000000000001.json"))
	if err != nil {
		t.Fatal(err)
	}
	two := strings.Replace(string(one), `"seq":1,"parent":0`, `"seq":2,"parent":1`, 1)
	if two == string(one) {
		t.Fatalf("manifest 1 does not look as expected: %s", one)
	}
	if err := os.WriteFile(filepath.Join(manifests, "000000000002.json"), []byte(two), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := mustRun(t, environ, "checkpoint", "ls"); strings.Contains(out, "\n2 ") || !strings.Contains(out, "\n1 ") {
		t.Fatalf("ls shows the unpublished checkpoint 2, or not 1:\n%s", out)
	}
	for _, args := range [][]string{{"show", "2"}, {"restore", "--seq", "2", filepath.Join(t.TempDir(), "d")}} {
		r := runBaton(t, environ, append([]string{"checkpoint"}, args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "not a published checkpoint") {
			t.Fatalf("%v: exit %d, stderr %q; want 1 and \"not a published checkpoint\"", args, r.code, r.stderr)
		}
	}

	if err := os.Remove(filepath.Join(manifests, "000000000001.json")); err != nil {
		t.Fatal(err)
	}
	r := runBaton(t, environ, "checkpoint", "ls")
	if r.code != 1 || !strings.Contains(r.stderr, "names checkpoint 1, whose manifest is missing") {
		t.Fatalf("ls with latest.json naming a missing manifest: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
