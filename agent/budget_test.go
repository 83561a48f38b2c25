package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/agent/platform"
	"github.com/batonrun/baton/checkpoint"
)

// TestEstimateFinalCommit checks the bytes counted as changed since the
// last commit (new files, a changed size or mtime; excluded names and
// baton's own entries never) and the rate used: the last commit's, when
// this host made it and it uploaded enough, else the default.
func TestEstimateFinalCommit(t *testing.T) {
	mtime := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	write := func(rel string, size int, at time.Time) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
	write("model.bin", 3000, mtime)
	write("optim.bin", 2000, mtime)
	write("sub/state.json", 100, mtime)
	write("big.bin.tmp", 1<<20, mtime)                   // excluded by default
	write("tmp-checkpoint-9/model.bin", 1<<20, mtime)    // an excluded directory
	write(checkpoint.StateFile, 50, mtime)               // baton's own
	write(checkpoint.ReservedPrefix+"fork/x", 50, mtime) // baton's own

	file := func(path string, size int64, at time.Time) checkpoint.File {
		return checkpoint.File{Path: path, Size: size, MTime: at}
	}
	scanned := mtime.Add(time.Minute)
	manifest := func(newBytes int64, took time.Duration, host, plat string, files ...checkpoint.File) *checkpoint.Manifest {
		return &checkpoint.Manifest{Host: host, Platform: plat, NewBytes: newBytes, ScannedAt: scanned, CreatedAt: scanned.Add(took), Files: files}
	}
	all := []checkpoint.File{file("model.bin", 3000, mtime), file("optim.bin", 2000, mtime), file("sub/state.json", 100, mtime)}
	const host, plat = "h1", platform.Docker
	for _, tc := range []struct {
		name     string
		exclude  []string
		last     *checkpoint.Manifest
		bytes    int64
		files    int
		rate     float64
		measured bool
	}{
		{name: "no commit yet: everything", exclude: checkpoint.DefaultExclude,
			bytes: 5100, files: 3, rate: defaultUploadRate},
		{name: "nothing changed", exclude: checkpoint.DefaultExclude, last: manifest(0, time.Second, host, plat, all...),
			rate: defaultUploadRate},
		{name: "a new file and a changed size", exclude: checkpoint.DefaultExclude,
			last:  manifest(0, time.Second, host, plat, file("model.bin", 2999, mtime), file("sub/state.json", 100, mtime)),
			bytes: 5000, files: 2, rate: defaultUploadRate},
		{name: "a changed mtime", exclude: checkpoint.DefaultExclude,
			last:  manifest(0, time.Second, host, plat, file("model.bin", 3000, mtime.Add(-time.Second)), file("optim.bin", 2000, mtime), file("sub/state.json", 100, mtime)),
			bytes: 3000, files: 1, rate: defaultUploadRate},
		{name: "nothing excluded: the temporary files count", exclude: nil, last: manifest(0, time.Second, host, plat, all...),
			bytes: 2 << 20, files: 2, rate: defaultUploadRate},
		{name: "rate measured by this host", exclude: checkpoint.DefaultExclude, last: manifest(400<<20, 4*time.Second, host, plat, all...),
			rate: 100 << 20, measured: true},
		{name: "rate of another host is not ours", exclude: checkpoint.DefaultExclude, last: manifest(400<<20, 4*time.Second, "h2", plat, all...),
			rate: defaultUploadRate},
		{name: "rate of another platform is not ours", exclude: checkpoint.DefaultExclude, last: manifest(400<<20, 4*time.Second, host, platform.RunPod, all...),
			rate: defaultUploadRate},
		{name: "too little uploaded to measure", exclude: checkpoint.DefaultExclude, last: manifest(minRateSample-1, time.Millisecond, host, plat, all...),
			rate: defaultUploadRate},
		{name: "a clock that went back", exclude: checkpoint.DefaultExclude, last: manifest(400<<20, -time.Second, host, plat, all...),
			rate: defaultUploadRate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := estimateFinalCommit(dir, tc.exclude, tc.last, host, plat)
			if err != nil {
				t.Fatal(err)
			}
			if e.Bytes != tc.bytes || e.Files != tc.files || e.Rate != tc.rate || e.Measured != tc.measured {
				t.Errorf("estimate = %d bytes in %d files at %.0f B/s (measured %v); want %d in %d at %.0f (%v)",
					e.Bytes, e.Files, e.Rate, e.Measured, tc.bytes, tc.files, tc.rate, tc.measured)
			}
			if want := time.Duration(float64(tc.bytes) / tc.rate * float64(time.Second)); e.Duration != want {
				t.Errorf("duration = %v, want %v", e.Duration, want)
			}
		})
	}
	if _, err := estimateFinalCommit(filepath.Join(dir, "missing"), nil, nil, host, plat); err == nil {
		t.Error("no error for a missing directory")
	}
}

// TestStopBudgetReport checks the line logged at a stop, and that it warns
// exactly when the estimate exceeds what the window leaves.
func TestStopBudgetReport(t *testing.T) {
	docker := config.Config{}.StopBudget(platform.Docker) // 10 s window, 5 s grace
	local := config.Config{}.StopBudget(platform.Local)
	est := func(mb int64, rate float64, measured bool) commitEstimate {
		b := mb << 20
		return commitEstimate{Bytes: b, Files: 1, Rate: rate, Measured: measured,
			Duration: time.Duration(float64(b) / rate * float64(time.Second))}
	}
	for _, tc := range []struct {
		name    string
		e       commitEstimate
		b       config.StopBudget
		elapsed time.Duration
		want    string
		warn    bool
	}{
		{name: "fits", e: est(500, 100<<20, true), b: docker,
			want: "final commit: ~500 MiB changed since the last commit, ~5.0 s at the measured 100 MiB/s; the stop window leaves ~10.0 s (~5.0 s once the trainer's 5.0 s grace is over)"},
		{name: "does not fit", e: est(2048, 100<<20, true), b: docker, warn: true,
			want: "final commit: ~2048 MiB changed since the last commit, ~20.5 s at the measured 100 MiB/s; the stop window leaves ~10.0 s (~5.0 s once the trainer's 5.0 s grace is over); it will not fit"},
		{name: "the time already gone counts", e: est(500, 100<<20, true), b: docker, elapsed: 6 * time.Second, warn: true,
			want: "~5.0 s at the measured 100 MiB/s; the stop window leaves ~4.0 s (~4.0 s once"},
		{name: "past the window", e: est(1, 100<<20, true), b: docker, elapsed: 11 * time.Second, warn: true,
			want: "the stop window leaves ~0.0 s (~0.0 s once"},
		{name: "assumed rate", e: est(5, defaultUploadRate, false), b: docker,
			want: "final commit: ~5.0 MiB changed since the last commit, ~0.1 s at an assumed 50 MiB/s; the stop window leaves ~10.0 s"},
		{name: "nothing changed", e: est(0, defaultUploadRate, false), b: docker,
			want: "final commit: ~0.0 MiB changed since the last commit, ~0.0 s at an assumed 50 MiB/s"},
		{name: "no window", e: est(100000, 100<<20, true), b: local,
			want: "; no stop window on this platform: it takes as long as it needs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, warn := stopBudgetReport(tc.e, tc.b, tc.elapsed)
			if !strings.Contains(msg, tc.want) || warn != tc.warn {
				t.Errorf("report = %q, warn %v\nwant it to hold %q, warn %v", msg, warn, tc.want, tc.warn)
			}
			if warn && !strings.Contains(msg, "baton checkpoint commit") {
				t.Errorf("a warning without advice: %q", msg)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("more than one line: %q", msg)
			}
		})
	}
}
