package progress

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/internal/fakeclock"
)

const what = "pulling s3://b/data into /data"

// logged decodes the JSON lines of buf.
func logged(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for line := range strings.Lines(buf.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		lines = append(lines, m)
	}
	return lines
}

// begin starts a transfer of 3 files and 30 MiB on a fake clock, with no
// goroutine: the test calls update. With bar it draws on the returned
// buffer (a fake terminal), else it logs JSON lines into it.
func begin(bar bool) (*Transfer, *fakeclock.Clock, *bytes.Buffer) {
	clock := fakeclock.New(time.Unix(1e9, 0))
	var buf bytes.Buffer
	r := &Reporter{Now: clock.Now, manual: true}
	if bar {
		r.Bar = &buf
	} else {
		r.Log = slog.New(slog.NewJSONHandler(&buf, nil))
	}
	tr := r.Start(what)
	tr.Plan(3, 30<<20)
	return tr, clock, &buf
}

func TestNothingForATransferUnderASecond(t *testing.T) {
	for _, bar := range []bool{false, true} {
		tr, clock, buf := begin(bar)
		clock.Advance(500 * time.Millisecond)
		tr.update()
		tr.Add(3, 30<<20)
		clock.Advance(499 * time.Millisecond)
		tr.update()
		tr.End(nil)
		if buf.Len() != 0 {
			t.Errorf("a transfer of 999ms showed %q, want nothing", buf)
		}
	}
}

func TestNothingBeforeThePlan(t *testing.T) {
	clock := fakeclock.New(time.Unix(1e9, 0))
	var logBuf bytes.Buffer
	tr := (&Reporter{Log: slog.New(slog.NewJSONHandler(&logBuf, nil)), Now: clock.Now, manual: true}).Start(what)
	clock.Advance(5 * time.Second) // a long listing
	tr.update()
	if logBuf.Len() != 0 {
		t.Fatalf("shown before its totals were known: %q", &logBuf)
	}
	tr.Plan(0, 0) // everything up to date
	tr.update()
	if logBuf.Len() != 0 {
		t.Fatalf("shown with nothing to move: %q", &logBuf)
	}
	tr.Plan(1, 100)
	tr.update()
	if lines := logged(t, &logBuf); len(lines) != 1 || lines[0]["files_total"] != 1.0 {
		t.Errorf("once planned: %v, want the first line", lines)
	}
}

func TestLogLines(t *testing.T) {
	tr, clock, buf := begin(false)
	clock.Advance(time.Second)
	tr.update() // the first line: totals only
	clock.Advance(5 * time.Second)
	tr.Add(1, 10<<20)
	tr.update() // 6s: no line, the last was 5s ago
	clock.Advance(5 * time.Second)
	tr.update() // 11s: a progress line
	clock.Advance(9 * time.Second)
	tr.update() // 20s: none
	tr.Add(2, 20<<20)
	clock.Advance(time.Second)
	tr.update() // 21s: a progress line, nothing left, so no ETA
	tr.End(nil)

	lines := logged(t, buf)
	want := []map[string]any{
		{"msg": what, "files_total": 3.0, "total_bytes": 31457280.0},
		{"msg": what, "files_done": 1.0, "files_total": 3.0, "done_bytes": 10485760.0, "total_bytes": 31457280.0,
			"rate_bytes_per_s": 953250.0, "eta_s": 22.0}, // 10 MiB in 11s; 20 MiB left at that rate
		{"msg": what, "files_done": 3.0, "files_total": 3.0, "done_bytes": 31457280.0, "total_bytes": 31457280.0,
			"rate_bytes_per_s": 1497965.0},
		{"msg": what + ": done", "files_done": 3.0, "files_total": 3.0, "done_bytes": 31457280.0, "total_bytes": 31457280.0,
			"elapsed_s": 21.0, "rate_bytes_per_s": 1497965.0},
	}
	if len(lines) != len(want) {
		t.Fatalf("logged %d lines, want %d:\n%s", len(lines), len(want), buf)
	}
	for i, w := range want {
		got := lines[i]
		delete(got, "time")
		delete(got, "level")
		if len(got) != len(w) {
			t.Errorf("line %d: %v, want %v", i, got, w)
			continue
		}
		for k, v := range w {
			if got[k] != v {
				t.Errorf("line %d: %s = %v, want %v", i, k, got[k], v)
			}
		}
	}
}

func TestBar(t *testing.T) {
	tr, clock, term := begin(true)
	clock.Advance(time.Second)
	tr.update()
	if got, want := term.String(), what+": 3 files, 30.0 MiB\n\r[>                       ]   0%  0/3 files  0 B/30.0 MiB  —/s  ETA —\x1b[K"; got != want {
		t.Errorf("after 1s with nothing moved:\n got %q\nwant %q", got, want)
	}
	term.Reset()
	tr.Add(1, 10<<20)
	clock.Advance(time.Second)
	tr.update()
	if got, want := term.String(), "\r[========>               ]  33%  1/3 files  10.0 MiB/30.0 MiB  5.0 MiB/s  ETA 4s\x1b[K"; got != want {
		t.Errorf("after 2s, a third moved:\n got %q\nwant %q", got, want)
	}
	term.Reset()
	tr.Add(1, 20<<20-1)
	clock.Advance(time.Second)
	tr.update()
	if got := term.String(); !strings.Contains(got, "ETA 1s") {
		t.Errorf("one byte left: %q, want ETA 1s (never 0s)", got)
	}
	term.Reset()
	tr.Add(1, 1)
	clock.Advance(time.Second)
	tr.update()
	if got := term.String(); !strings.Contains(got, "100%") || !strings.Contains(got, "ETA —") {
		t.Errorf("all moved, files still being sealed: %q, want 100%% and ETA —", got)
	}
	term.Reset()
	clock.Advance(time.Second)
	tr.End(nil)
	if got, want := term.String(), "\r\x1b[K"+what+": done, 3 files, 30.0 MiB in 5s (6.0 MiB/s)\n"; got != want {
		t.Errorf("last line:\n got %q\nwant %q", got, want)
	}
}

func TestNeverETAZero(t *testing.T) {
	for _, left := range []int64{1, 10, 1 << 20} {
		s := Snapshot{BytesDone: 1 << 40, BytesTotal: 1<<40 + left}
		if e, ok := eta(s, 1e12); !ok || e < time.Second {
			t.Errorf("%d bytes left at 1 TB/s: ETA %v, %v; want at least 1s", left, e, ok)
		}
	}
	if _, ok := eta(Snapshot{BytesDone: 5, BytesTotal: 5}, 1); ok {
		t.Error("nothing left: an ETA, want none")
	}
	if !strings.Contains(barLine(Snapshot{FilesTotal: 1, BytesTotal: 10}, time.Hour), "—/s  ETA —") {
		t.Error("no byte moved: the bar shows a rate or an ETA")
	}
}

// TestEndShowsWhatNoTickShowed: a transfer that ran for more than a second
// gets its first and last lines even when it ended between two ticks.
func TestEndShowsWhatNoTickShowed(t *testing.T) {
	tr, clock, term := begin(true)
	tr.Plan(2, 4096)
	tr.Add(1, 2048)
	clock.Advance(1500 * time.Millisecond)
	tr.End(errors.New("cut"))
	want := what + ": 2 files, 4.0 KiB\n\r\x1b[K" + what + ": failed, 1 of 2 files, 2.0 KiB of 4.0 KiB in 1.5s (1.3 KiB/s)\n"
	if got := term.String(); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestNilReporterCounts(t *testing.T) {
	var r *Reporter
	tr := r.Start(what)
	tr.Plan(1, 10)
	tr.Add(1, 10)
	tr.End(nil)
	if s, ok := tr.Snapshot(); !ok || s.BytesDone != 10 || s.FilesDone != 1 {
		t.Errorf("snapshot %+v, %v", s, ok)
	}
}

// TestConcurrentCounting runs the reporter's own goroutine while workers
// count (for the race detector), on a clock that jumps a second a reading.
func TestConcurrentCounting(t *testing.T) {
	clock := fakeclock.New(time.Unix(1e9, 0))
	var buf bytes.Buffer
	r := &Reporter{Log: slog.New(slog.NewJSONHandler(&buf, nil)), Now: func() time.Time {
		clock.Advance(time.Second)
		return clock.Now()
	}}
	tr := r.Start(what)
	tr.Plan(8, 8000)
	done := make(chan struct{})
	for range 8 {
		go func() {
			for range 1000 {
				tr.Add(0, 1)
			}
			tr.Add(1, 0)
			done <- struct{}{}
		}()
	}
	for range 8 {
		<-done
	}
	tr.End(nil)
	lines := logged(t, &buf)
	last := lines[len(lines)-1]
	if last["msg"] != what+": done" || last["files_done"] != 8.0 || last["done_bytes"] != 8000.0 {
		t.Errorf("last line %v", last)
	}
}
