package transfer_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/internal/fakeclock"
	"github.com/batonrun/baton/internal/progress"
	"github.com/batonrun/baton/sync/transfer"
)

// TestProgressCountsEveryFileAndByte pushes and pulls a tree through an
// engine that reports on a clock a second ahead at every reading, so that
// each transfer is shown: its first line holds the totals, its last line
// the same numbers moved; a pull of what is up to date shows nothing.
func TestProgressCountsEveryFileAndByte(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	files := makeTree(t, src, 7)
	var size int64
	for _, b := range files {
		size += int64(len(b))
	}
	store := newFileStore(t)
	var logs bytes.Buffer
	clock := fakeclock.New(time.Unix(1e9, 0))
	r := noWait
	e := transfer.New(transfer.Options{Workers: 4, PartSize: partSize, Retry: &r, Progress: &progress.Reporter{
		Log: slog.New(slog.NewJSONHandler(&logs, nil)),
		Now: func() time.Time { clock.Advance(time.Second); return clock.Now() },
	}})

	totals := fmt.Sprintf(`"files_total":%d,"total_bytes":%d}`, len(files), size)
	moved := fmt.Sprintf(`"files_done":%d,"files_total":%d,"done_bytes":%d,"total_bytes":%d,`, len(files), len(files), size, size)
	for _, c := range []struct {
		what string
		run  func() (transfer.Stats, error)
	}{
		{"pushing " + src + " to " + store.String(), func() (transfer.Stats, error) { return e.Push(t.Context(), src, store) }},
		{"pulling " + store.String() + " into " + dst, func() (transfer.Stats, error) { return e.Pull(t.Context(), store, dst) }},
	} {
		logs.Reset()
		if _, err := c.run(); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
		first, last := lines[0], lines[len(lines)-1]
		if !strings.Contains(first, `"msg":"`+c.what+`",`+totals) {
			t.Errorf("first line %s, want %q with %s", first, c.what, totals)
		}
		if !strings.Contains(last, `"msg":"`+c.what+`: done",`+moved) {
			t.Errorf("last line %s, want %q: done with %s", last, c.what, moved)
		}
	}
	logs.Reset()
	if _, err := e.Pull(t.Context(), store, dst); err != nil {
		t.Fatal(err)
	}
	if logs.Len() != 0 {
		t.Errorf("a pull with nothing to move showed %s", &logs)
	}
}
