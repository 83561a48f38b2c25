package checkpoint_test

// A checkpoint of many small files commits and restores with few file
// descriptors: restore opens a file only when its chunks are handed to the
// workers and closes it once its last chunk is written, so the files open at
// once are bounded whatever their number.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/batonrun/baton/sync/storage"
)

// lowerOpenFiles lowers this process's soft limit on open files to n for
// the rest of the test.
func lowerOpenFiles(t *testing.T, n uint64) {
	t.Helper()
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: orig.Max}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
			t.Errorf("restoring the limit on open files: %v", err)
		}
	})
}

// TestManyFilesFewDescriptors commits and restores 2,000 small files (1 KiB
// each, 1% empty, in 50 directories) with at most 256 files open, into a
// new directory and then over the restored one; set BATON_MANYFILES to
// change the count (scripts/bench-manyfiles.sh measures 100,000 with the
// baton binary). Before the bound, restore opened every file before
// downloading and failed with "too many open files".
func TestManyFilesFewDescriptors(t *testing.T) { eachStore(t, testManyFilesFewDescriptors) }

func testManyFilesFewDescriptors(t *testing.T, store storage.Store) {
	n := 2000
	if s := os.Getenv("BATON_MANYFILES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatalf("BATON_MANYFILES=%q: %v", s, err)
		}
	}
	ctx := t.Context()
	w, lease := acquireOn(t, store, "a", newSyncClock().now)
	src := t.TempDir()
	for i := range n {
		dir := filepath.Join(src, fmt.Sprintf("shard-%02d", i%50))
		if i < 50 {
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		size := 1024
		if i%100 == 99 {
			size = 0
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%06d", i)), content(size, uint64(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	lowerOpenFiles(t, 256)
	m, err := w.Commit(ctx, lease, src, nil)
	if err != nil {
		t.Fatalf("commit of %d files with at most 256 open: %v", n, err)
	}
	if len(m.Files) != n {
		t.Fatalf("the commit has %d files, want %d", len(m.Files), n)
	}
	dst := filepath.Join(t.TempDir(), "ckpt")
	for round := range 2 { // into nothing, then over the restored checkpoint
		if _, err := w.Restore(ctx, 0, dst); err != nil {
			t.Fatalf("restore %d of %d files with at most 256 open: %v", round, n, err)
		}
	}
	if d := diffTrees(readTree(t, dst), readTree(t, src)); d != "" {
		t.Fatal(d)
	}
}
