package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMessagesCountInTheSingular: the commands say "1 file", "the newest
// checkpoint" and "1 manifest", not "1 files", "newest 1 checkpoints".
func TestMessagesCountInTheSingular(t *testing.T) {
	environ := checkpointEnv("file://"+t.TempDir(), "one")
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"model.bin": randomData(1, 100<<10)}, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))

	if out := mustRun(t, environ, "checkpoint", "commit", src); !strings.HasPrefix(out, "committed checkpoint 1 of run one: 1 file, 100.0 KiB, 100.0 KiB new, in ") {
		t.Errorf("commit of one file: %q", out)
	}
	if out := mustRun(t, environ, "checkpoint", "show"); !strings.Contains(out, "100.0 KiB in 1 file, 100.0 KiB new") {
		t.Errorf("show of one file:\n%s", out)
	}
	dst := filepath.Join(t.TempDir(), "restored")
	if out := mustRun(t, environ, "checkpoint", "restore", dst); !strings.Contains(out, ": 1 file, 100.0 KiB, in ") {
		t.Errorf("restore of one file: %q", out)
	}
	out := mustRun(t, environ, "checkpoint", "gc", "--keep=1", "--grace=0s")
	if !strings.Contains(out, "run one: kept the newest checkpoint and the pinned ones; deleted checkpoints: none\n") ||
		!strings.Contains(out, " referenced by 1 manifest; ") {
		t.Errorf("gc --keep=1:\n%s", out)
	}
	writeTree(t, src, map[string][]byte{"optimizer.pt": randomData(2, 10<<10)}, time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC))
	mustRun(t, environ, "checkpoint", "commit", src)
	if out := mustRun(t, environ, "checkpoint", "gc", "--keep=2", "--grace=0s"); !strings.Contains(out, "kept the newest 2 checkpoints and the pinned ones") ||
		!strings.Contains(out, " referenced by 2 manifests; ") {
		t.Errorf("gc --keep=2:\n%s", out)
	}

	one, store := t.TempDir(), "file://"+t.TempDir()
	writeTree(t, one, map[string][]byte{"model.bin": randomData(1, 100<<10)}, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if r := runBaton(t, nil, "push", "--progress=none", one, store); r.code != 0 ||
		!strings.HasPrefix(r.stdout, "pushed 1 file (100.0 KiB) in ") || !strings.HasSuffix(r.stdout, "; 0 files (0 B) already up to date\n") {
		t.Errorf("push of one file: %+v", r)
	}
	pulled := t.TempDir()
	mustRun(t, nil, "pull", "--progress=none", store, pulled)
	if r := runBaton(t, nil, "pull", "--progress=none", store, pulled); r.code != 0 || !strings.HasSuffix(r.stdout, "; 1 file (100.0 KiB) already up to date\n") {
		t.Errorf("second pull of one file: %+v", r)
	}
}
