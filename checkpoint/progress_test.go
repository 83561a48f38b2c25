package checkpoint_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/fakeclock"
	"github.com/batonrun/baton/internal/progress"
)

// TestProgressOfCommitAndRestore: a commit shows the files it reads and
// their bytes, only those changed since the parent; a restore shows every
// file and byte of the checkpoint; each last line has its totals moved. The
// reporter's clock jumps a second at every reading, so that every transfer
// is shown.
func TestProgressOfCommitAndRestore(t *testing.T) {
	var logs bytes.Buffer
	clock := fakeclock.New(time.Unix(1e9, 0))
	repo, err := checkpoint.Open(newStore(t), checkpoint.Options{
		Run: testRun, Holder: checkpoint.Holder{ID: "h"}, ChunkSize: 64 << 10, Workers: 4, Logger: quiet,
		Progress: &progress.Reporter{
			Log: slog.New(slog.NewJSONHandler(&logs, nil)),
			Now: func() time.Time { clock.Advance(time.Second); return clock.Now() },
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	lease, err := repo.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Two files with the same content: the second one's chunks are
	// claimed by the first, and count all the same.
	writeTree(t, dir, map[string][]byte{"model.bin": content(200<<10, 1), "copy.bin": content(200<<10, 1), "empty": nil})
	setMTimes(t, dir, time.Now().Add(-time.Hour)) // settled: the next commit reuses them
	const all = 400 << 10

	// shows checks the first and the last line of what logs holds.
	shows := func(what string, files, bytes int) {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
		first := fmt.Sprintf(`"msg":%q,"files_total":%d,"total_bytes":%d}`, what, files, bytes)
		last := fmt.Sprintf(`"msg":"%s: done","files_done":%d,"files_total":%d,"done_bytes":%d,"total_bytes":%d,`, what, files, files, bytes, bytes)
		if !strings.Contains(lines[0], first) || !strings.Contains(lines[len(lines)-1], last) {
			t.Errorf("shown:\n%s\nwant a first line with %s and a last with %s", &logs, first, last)
		}
		logs.Reset()
	}
	if _, err := repo.Commit(t.Context(), lease, dir, nil); err != nil {
		t.Fatal(err)
	}
	shows("committing "+dir+" as the next checkpoint of run "+testRun, 3, all)

	os.WriteFile(filepath.Join(dir, "copy.bin"), content(100<<10, 2), 0o644)
	if _, err := repo.Commit(t.Context(), lease, dir, nil); err != nil {
		t.Fatal(err)
	}
	shows("committing "+dir+" as the next checkpoint of run "+testRun, 1, 100<<10)

	into := filepath.Join(t.TempDir(), "ckpt")
	if _, err := repo.Restore(t.Context(), 1, into); err != nil {
		t.Fatal(err)
	}
	shows("restoring checkpoint 1 of run "+testRun+" into "+into, 3, all)
}
