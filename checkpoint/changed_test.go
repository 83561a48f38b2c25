package checkpoint_test

// A file changed while a commit reads the directory (the trainer was still
// writing): the commit is dropped with ErrDirChanged and publishes nothing;
// a later commit of the settled directory succeeds.

import (
	"bytes"
	"errors"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/sync/faults"
	"github.com/batonrun/baton/sync/storage"
)

func TestFileChangedDuringCommit(t *testing.T) {
	cases := []struct {
		name string
		file string // the file changed, relative to the directory
		// change changes p while the commit uploads its first chunk.
		change func(p string) error
	}{
		{"rewritten in place, same size", "model.bin", func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt(bytes.Repeat([]byte{0xAB}, 4096), 3*64<<10)
			return err
		}},
		{"rewritten in place, other file", "optim/state.pt", func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt([]byte("x"), 0)
			return err
		}},
		{"appended to", "model.bin", func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Write(make([]byte, 100_000))
			return err
		}},
		{"truncated", "model.bin", func(p string) error {
			return os.Truncate(p, 1000)
		}},
		{"replaced by a rename", "optim/state.pt", func(p string) error {
			tmp := p + ".tmp"
			if err := os.WriteFile(tmp, content(120_000, 77), 0o644); err != nil {
				return err
			}
			return os.Rename(tmp, p)
		}},
		{"deleted", "optim/state.pt", func(p string) error {
			return os.Remove(p)
		}},
		{"deleted, the big one", "model.bin", func(p string) error {
			return os.Remove(p)
		}},
	}
	eachStore(t, func(t *testing.T, inner storage.Store) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				clearRuns(t, inner)
				testChangedDuringCommit(t, inner, tc.file, tc.change)
			})
		}
	})
}

func testChangedDuringCommit(t *testing.T, inner storage.Store, file string, change func(string) error) {
	ctx := t.Context()
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	salt := h.Sum64()
	clk := newSyncClock()
	dir := t.TempDir()
	files := func(step uint64) map[string][]byte {
		return map[string][]byte{
			"model.bin":      content(10*64<<10+5, salt, step, 1),
			"optim/state.pt": content(300_000, salt, step, 2),
			"step.txt":       []byte{byte('0' + step)},
		}
	}
	// Commit 1 of a settled directory.
	first := files(1)
	writeTree(t, dir, first)
	setMTimes(t, dir, time.Now().Add(-2*time.Hour))
	plain, lease := acquireOn(t, inner, "a", clk.now)
	m1, err := plain.Commit(ctx, lease, dir, nil)
	if err != nil {
		t.Fatal(err)
	}

	// The trainer writes step 2, and is still at it when the commit runs:
	// the first chunk upload changes the file. The mtimes of step 2 are in
	// the past, so that the change shows whatever the file system's
	// timestamp granularity.
	writeTree(t, dir, files(2))
	setMTimes(t, dir, time.Now().Add(-time.Hour))
	var (
		changed   bool
		changeErr error
		once      sync.Once
	)
	s := faults.Wrap(inner, hook(faults.OpPut, func(key string) {
		if strings.HasPrefix(key, "chunks/") {
			once.Do(func() {
				changeErr = change(filepath.Join(dir, filepath.FromSlash(file)))
				changed = true
			})
		}
	}))
	r := openOn(t, s, "a", clk.now)
	lease, err = r.Acquire(ctx) // the same holder takes its lease back
	if err != nil {
		t.Fatal(err)
	}
	latest0, etag0 := rawObject(t, inner, latestKey())
	manifests0 := listKeys(t, inner, "runs/"+testRun+"/manifests/")
	m, err := r.Commit(ctx, lease, dir, nil)
	if !changed || changeErr != nil {
		t.Fatalf("changing %s during the commit: ran %v, %v", file, changed, changeErr)
	}
	if !errors.Is(err, checkpoint.ErrDirChanged) {
		t.Fatalf("commit while %s changed: checkpoint %d, err %v; want ErrDirChanged", file, seqOf(m), err)
	}
	if !strings.Contains(err.Error(), file) {
		t.Errorf("the error does not name the file that changed: %v", err)
	}
	// Nothing published, nothing even written but chunks.
	if latest, etag := rawObject(t, inner, latestKey()); !bytes.Equal(latest, latest0) || etag != etag0 {
		t.Fatalf("latest.json moved: %s", latest)
	}
	if got := listKeys(t, inner, "runs/"+testRun+"/manifests/"); !slices.Equal(got, manifests0) {
		t.Fatalf("manifests after the dropped commit: %v, before: %v", got, manifests0)
	}
	list, err := r.List(ctx)
	if err != nil || len(list) != 1 || list[0].Seq != m1.Seq || !list[0].Latest {
		t.Fatalf("list after the dropped commit: %+v, %v", list, err)
	}
	dst := filepath.Join(t.TempDir(), "r")
	if _, err := r.Restore(ctx, 0, dst); err != nil {
		t.Fatal(err)
	}
	if d := diffTrees(readTree(t, dst), first); d != "" {
		t.Fatalf("restore after the dropped commit: %s", d)
	}

	// Tried again once the directory settled, the commit goes through.
	m2, err := r.Commit(ctx, lease, dir, nil)
	if err != nil {
		t.Fatalf("commit of the settled directory: %v", err)
	}
	if m2.Seq != m1.Seq+1 || m2.Parent != m1.Seq {
		t.Fatalf("commit of the settled directory: seq %d parent %d, want %d and %d", m2.Seq, m2.Parent, m1.Seq+1, m1.Seq)
	}
	if _, err := r.Restore(ctx, 0, dst); err != nil {
		t.Fatal(err)
	}
	if d := diffTrees(readTree(t, dst), readTree(t, dir)); d != "" {
		t.Fatalf("restore of the settled directory: %s", d)
	}
}
