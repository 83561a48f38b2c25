package host

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRealReading samples this machine and checks what must hold of any
// real host.
func TestRealReading(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := New(t.Context(), Options{Disks: map[string]string{"checkpoint": dir, "workspace": "/"}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Sample(t.Context())
	if err != nil || len(r.Errors) != 0 {
		t.Fatalf("sample: %v %v", err, r.Errors)
	}
	if r.Time.IsZero() {
		t.Error("no time")
	}
	if r.CPUPercent < 0 || r.CPUPercent > 100 {
		t.Errorf("cpu %v%%, want 0 to 100", r.CPUPercent)
	}
	m := r.Memory
	if m.TotalBytes == 0 || m.UsedBytes > m.TotalBytes || m.AvailableBytes > m.TotalBytes {
		t.Errorf("memory %+v: want 0 < used, available <= total", m)
	}
	if len(r.Disks) != 2 || r.Disks[0].Role != "checkpoint" || r.Disks[1].Role != "workspace" {
		t.Fatalf("disks %+v, want checkpoint then workspace", r.Disks)
	}
	for _, d := range r.Disks {
		if d.Error != "" || d.TotalBytes == 0 || d.FreeBytes > d.TotalBytes || d.UsedBytes > d.TotalBytes || d.InodesFree > d.InodesTotal {
			t.Errorf("disk %+v: want 0 < total, free <= total, used <= total, inodes free <= total", d)
		}
	}
	if r.Disks[0].Path != dir {
		t.Errorf("checkpoint disk path %q, want %q", r.Disks[0].Path, dir)
	}
	if r.Network.RxBytesPerSecond < 0 || r.Network.TxBytesPerSecond < 0 {
		t.Errorf("network rates %+v", r.Network)
	}
	p := r.Process
	if p.PID != os.Getpid() || p.RSSBytes == 0 || p.RSSBytes > m.TotalBytes || p.CPUSeconds < 0 {
		t.Errorf("process %+v: want pid %d, 0 < rss <= memory, cpu seconds >= 0", p, os.Getpid())
	}
}

// TestProcessCPUGrows burns CPU until the kernel's accounting (10 ms ticks)
// shows it: the process's CPU seconds only go up.
func TestProcessCPUGrows(t *testing.T) {
	t.Parallel()
	s, err := New(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.Sample(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(nil)
	for range 1000 {
		for range 20000 {
			sum = sha256.Sum256(sum[:])
		}
		r, err := s.Sample(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if r.Process.CPUSeconds < first.Process.CPUSeconds {
			t.Fatalf("cpu seconds went back: %v then %v", first.Process.CPUSeconds, r.Process.CPUSeconds)
		}
		if r.Process.CPUSeconds > first.Process.CPUSeconds {
			return
		}
	}
	t.Fatalf("cpu seconds stayed at %v after 20 million hashes", first.Process.CPUSeconds)
}

// TestMissingDisk: a disk path that does not exist fails that disk only.
func TestMissingDisk(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "not-mounted")
	s, err := New(t.Context(), Options{Disks: map[string]string{"checkpoint": missing, "workspace": t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Sample(t.Context())
	if err == nil {
		t.Fatal("no error for a missing disk")
	}
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), `disk "checkpoint"`) || !strings.Contains(err.Error(), missing) {
		t.Errorf("error %q: want a not-exist error naming the role and path", err)
	}
	if strings.Contains(err.Error(), "workspace") {
		t.Errorf("error %q names the good disk", err)
	}
	ck, ws := r.Disks[0], r.Disks[1]
	if ck.Error == "" || !strings.Contains(ck.Error, missing) || ck.TotalBytes != 0 || ck.Path != missing {
		t.Errorf("missing disk %+v: want its error and no numbers", ck)
	}
	if ws.Error != "" || ws.TotalBytes == 0 {
		t.Errorf("good disk %+v", ws)
	}
	if r.Memory.TotalBytes == 0 || r.Process.RSSBytes == 0 || len(r.Errors) != 0 {
		t.Errorf("the rest of the reading is missing: %+v", r)
	}
}

func TestBadOptions(t *testing.T) {
	t.Parallel()
	for _, disks := range []map[string]string{{"": "/"}, {"checkpoint": ""}} {
		if _, err := New(t.Context(), Options{Disks: disks}); err == nil {
			t.Errorf("New with disks %v: no error", disks)
		}
	}
}

// fakeSource serves counters that a test sets.
type fakeSource struct {
	cpuT   cpuTimes
	nets   map[string]netCounters
	netErr error
	disks  map[string]Disk
}

func (f *fakeSource) cpu(context.Context) (cpuTimes, error) { return f.cpuT, nil }
func (f *fakeSource) memory(context.Context) (Memory, error) {
	return Memory{TotalBytes: 100, UsedBytes: 40, AvailableBytes: 60}, nil
}
func (f *fakeSource) disk(_ context.Context, path string) (Disk, error) {
	d, ok := f.disks[path]
	if !ok {
		return Disk{}, fs.ErrNotExist
	}
	return d, nil
}
func (f *fakeSource) net(context.Context) (map[string]netCounters, error) {
	if f.netErr != nil {
		return nil, f.netErr
	}
	out := map[string]netCounters{}
	for k, v := range f.nets {
		out[k] = v
	}
	return out, nil
}
func (f *fakeSource) process(context.Context) (Process, error) {
	return Process{PID: 1, CPUSeconds: 2, RSSBytes: 3}, nil
}

// fakeClock is a clock that moves only when told.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

// TestRates checks the rates and the CPU percentage against an injected
// clock and counters, step by step.
func TestRates(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	src := &fakeSource{
		cpuT: cpuTimes{busy: 100, total: 1000},
		nets: map[string]netCounters{"eth0": {rx: 1000, tx: 500}},
	}
	s, err := newSampler(t.Context(), Options{Clock: clock.Now}, src)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		advance time.Duration
		change  func()
		// want
		interval, cpu, rx, tx float64
		rxTotal               uint64
		wantErr               bool
	}{
		{name: "steady traffic", advance: 10 * time.Second, change: func() {
			src.cpuT = cpuTimes{busy: 125, total: 1100}
			src.nets["eth0"] = netCounters{rx: 11000, tx: 2500}
		}, interval: 10, cpu: 25, rx: 1000, tx: 200, rxTotal: 11000},
		{name: "an interface appears: it counts from the next interval", advance: 5 * time.Second, change: func() {
			src.cpuT = cpuTimes{busy: 225, total: 1200}
			src.nets["eth0"] = netCounters{rx: 16000, tx: 2500}
			src.nets["eth1"] = netCounters{rx: 1 << 30, tx: 1 << 30}
		}, interval: 5, cpu: 100, rx: 1000, tx: 0, rxTotal: 16000 + 1<<30},
		{name: "both interfaces", advance: 2 * time.Second, change: func() {
			src.nets["eth0"] = netCounters{rx: 16100, tx: 2500}
			src.nets["eth1"] = netCounters{rx: 1<<30 + 300, tx: 1<<30 + 40}
		}, interval: 2, cpu: 0, rx: 200, tx: 20, rxTotal: 16100 + 1<<30 + 300},
		{name: "a counter reset counts from zero", advance: 4 * time.Second, change: func() {
			src.nets["eth0"] = netCounters{rx: 400, tx: 2500}
			delete(src.nets, "eth1")
		}, interval: 4, cpu: 0, rx: 100, tx: 0, rxTotal: 400},
		{name: "the clock did not move: no rate", advance: 0, change: func() {
			src.nets["eth0"] = netCounters{rx: 900, tx: 2500}
		}, interval: 0, cpu: 0, rx: 0, tx: 0, rxTotal: 900},
		{name: "network unreadable", advance: time.Second, change: func() {
			src.netErr = errors.New("no /proc/net/dev")
		}, interval: 1, wantErr: true},
		{name: "after an unreadable sample the rate restarts", advance: time.Second, change: func() {
			src.netErr = nil
		}, interval: 1, rx: 0, rxTotal: 900},
		{name: "and resumes", advance: 3 * time.Second, change: func() {
			src.nets["eth0"] = netCounters{rx: 1200, tx: 2800}
		}, interval: 3, rx: 100, tx: 100, rxTotal: 1200},
	}
	for _, st := range steps {
		clock.Advance(st.advance)
		st.change()
		r, err := s.Sample(t.Context())
		if (err != nil) != st.wantErr {
			t.Fatalf("%s: error %v, want error %v", st.name, err, st.wantErr)
		}
		if r.OK(PartNetwork) == st.wantErr || (st.wantErr && !strings.Contains(r.Errors[PartNetwork], "no /proc/net/dev")) {
			t.Errorf("%s: errors %v, want the network's error exactly when the sample failed", st.name, r.Errors)
		}
		if !r.OK(PartCPU) || !r.OK(PartMemory) || !r.OK(PartProcess) {
			t.Errorf("%s: errors %v for parts that were read", st.name, r.Errors)
		}
		if !r.Time.Equal(clock.now) {
			t.Errorf("%s: time %v, want %v", st.name, r.Time, clock.now)
		}
		got := []float64{r.IntervalSeconds, r.CPUPercent, r.Network.RxBytesPerSecond, r.Network.TxBytesPerSecond}
		want := []float64{st.interval, st.cpu, st.rx, st.tx}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: interval, cpu, rx/s, tx/s = %v, want %v", st.name, got, want)
				break
			}
		}
		if r.Network.RxBytes != st.rxTotal {
			t.Errorf("%s: rx bytes %d, want %d", st.name, r.Network.RxBytes, st.rxTotal)
		}
	}
}

func TestCPUPercent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b cpuTimes
		want float64
	}{
		{cpuTimes{0, 0}, cpuTimes{50, 100}, 50},
		{cpuTimes{10, 100}, cpuTimes{10, 200}, 0},
		{cpuTimes{10, 100}, cpuTimes{10, 100}, 0}, // no time passed
		{cpuTimes{10, 100}, cpuTimes{5, 200}, 0},  // counters went back
		{cpuTimes{0, 100}, cpuTimes{300, 200}, 100},
	}
	for _, tt := range tests {
		if got := cpuPercent(tt.a, tt.b); got != tt.want {
			t.Errorf("cpuPercent(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestCheckDisks(t *testing.T) {
	t.Parallel()
	const gib = 1 << 30
	r := Reading{Disks: []Disk{
		{Role: "checkpoint", Path: "/ckpt", TotalBytes: 100 * gib, FreeBytes: 2 * gib, InodesTotal: 10, InodesFree: 5},
		{Role: "workspace", Path: "/workspace", TotalBytes: 100 * gib, FreeBytes: 50 * gib, InodesTotal: 10, InodesFree: 0},
		{Role: "scratch", Path: "/scratch", TotalBytes: 100 * gib, FreeBytes: 50 * gib}, // no inode counts: fine
		{Role: "gone", Path: "/gone", Error: "statfs /gone: no such file or directory"},
	}}
	tests := []struct {
		minFree uint64
		want    []Problem
	}{
		{minFree: gib, want: []Problem{
			{Kind: ProblemNoInodes, Role: "workspace", Path: "/workspace", FreeBytes: 50 * gib, MinFreeBytes: gib},
		}},
		{minFree: 5 * gib, want: []Problem{
			{Kind: ProblemDiskLow, Role: "checkpoint", Path: "/ckpt", FreeBytes: 2 * gib, MinFreeBytes: 5 * gib},
			{Kind: ProblemNoInodes, Role: "workspace", Path: "/workspace", FreeBytes: 50 * gib, MinFreeBytes: 5 * gib},
		}},
		{minFree: 60 * gib, want: []Problem{
			{Kind: ProblemDiskLow, Role: "checkpoint", Path: "/ckpt", FreeBytes: 2 * gib, MinFreeBytes: 60 * gib},
			{Kind: ProblemDiskLow, Role: "workspace", Path: "/workspace", FreeBytes: 50 * gib, MinFreeBytes: 60 * gib},
			{Kind: ProblemDiskLow, Role: "scratch", Path: "/scratch", FreeBytes: 50 * gib, MinFreeBytes: 60 * gib},
		}},
	}
	for _, tt := range tests {
		got := CheckDisks(r, tt.minFree)
		if len(got) != len(tt.want) {
			t.Errorf("min %d: got %v, want %v", tt.minFree, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("min %d: problem %d is %+v, want %+v", tt.minFree, i, got[i], tt.want[i])
			}
		}
	}
	if s := (Problem{Kind: ProblemDiskLow, Role: "checkpoint", Path: "/ckpt", FreeBytes: 1, MinFreeBytes: 2}).String(); !strings.Contains(s, "/ckpt") || !strings.Contains(s, "checkpoint") {
		t.Errorf("problem message %q names neither disk nor role", s)
	}
}

// TestJSON pins the snake_case field names that telemetry records carry.
func TestJSON(t *testing.T) {
	t.Parallel()
	r := Reading{Disks: []Disk{{Role: "checkpoint", Path: "/c"}}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"cpu_percent"`, `"interval_seconds"`, `"total_bytes"`, `"available_bytes"`, `"free_bytes"`,
		`"inodes_free"`, `"rx_bytes_per_second"`, `"tx_bytes_per_second"`, `"cpu_seconds"`, `"rss_bytes"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("%s lacks %s", b, key)
		}
	}
	if strings.Contains(string(b), `"error`) {
		t.Errorf("%s: a disk without error carries an error field", b)
	}
	if r.RecordType() != "host" {
		t.Errorf("record type %q", r.RecordType())
	}
}
