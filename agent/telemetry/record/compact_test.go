package record

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/agent/telemetry/host"
	"github.com/batonrun/baton/internal/fakeclock"
	"github.com/batonrun/baton/internal/s3test"
	"github.com/batonrun/baton/sync/faults"
	"github.com/batonrun/baton/sync/file/filetest"
	"github.com/batonrun/baton/sync/s3aws"
	"github.com/batonrun/baton/sync/storage"
)

// sim drives a Recorder through simulated time: perMinute events a minute,
// evenly spaced, and a flush at the end of every minute, as the ticker of
// the default Interval would.
type sim struct {
	t         *testing.T
	clk       *fakeclock.Clock
	r         *Recorder
	perMinute int
	n         int // events added so far; event i is added at t0 + i*step
}

func newSim(t *testing.T, store Putter, clk *fakeclock.Clock, perMinute int) *sim {
	t.Helper()
	r, err := New(store, Options{Run: run, Segment: seg, Clock: clk.Now, Tick: make(chan time.Time)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(t.Context()) })
	return &sim{t: t, clk: clk, r: r, perMinute: perMinute}
}

func (s *sim) step() time.Duration { return time.Minute / time.Duration(s.perMinute) }

// minutes simulates n minutes.
func (s *sim) minutes(n int) {
	s.t.Helper()
	for range n {
		for range s.perMinute {
			if err := s.r.Add(ev(s.n)); err != nil {
				s.t.Fatal(err)
			}
			s.n++
			s.clk.Advance(s.step())
		}
		if err := s.r.Flush(s.t.Context()); err != nil {
			s.t.Fatalf("flush at %s: %v", s.clk.Now(), err)
		}
	}
}

// segmentObjects lists the segment's objects: count and bytes.
func segmentObjects(t *testing.T, store ReadStore) (keys []string, bytes int64) {
	t.Helper()
	err := store.List(t.Context(), Prefix(run, seg), func(o storage.ObjectInfo) error {
		keys = append(keys, o.Key)
		bytes += o.Size
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys, bytes
}

// checkAll reads the whole segment back and checks that it holds events 0
// to n-1, each once, in order.
func checkAll(t *testing.T, store ReadStore, n int) {
	t.Helper()
	lines, err := ReadRange(t.Context(), store, nil, run, seg, time.Time{}, time.Time{})
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	if is, _ := events(t, lines); !equalInts(is, seq(0, n)) {
		t.Fatalf("read back %d events (first %v), want 0 to %d once each in order", len(is), is[:min(len(is), 5)], n-1)
	}
}

// TestThirtyDays simulates a 30-day run at the default settings (a part a
// minute): the segment ends with a bounded number of objects, every line
// is read back once in order, and reading the newest hour takes one listing
// and at most 16 GETs, none of a day's object.
func TestThirtyDays(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(t0)
	store := counting(newMemStore(clk.Now))
	s := newSim(t, store, clk, 1)

	s.minutes(24 * 60)
	keys, _ := segmentObjects(t, store)
	if len(keys) > 40 {
		t.Errorf("after a day: %d objects, want at most 40: %v", len(keys), keys)
	}
	checkAll(t, store, s.n)

	s.minutes(28 * 24 * 60)
	// The last day: read the newest hour every 7 minutes, at every phase of
	// the ten-minute, hour and day windows.
	hourBytes := int64(0)
	for i := range 24 * 60 / 7 {
		s.minutes(7)
		store.reset()
		lines, err := Newest(t.Context(), store, nil, run, seg, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		calls, got, _ := store.reset()
		// The events of the last hour: the newest line is event n-1, and
		// events are perMinute a minute apart.
		want := seq(s.n-1-60*s.perMinute, s.n)
		if is, _ := events(t, lines); !equalInts(is, want) {
			t.Fatalf("newest hour at %s: events %v..., want %d to %d", clk.Now(), is[:min(len(is), 3)], want[0], want[len(want)-1])
		}
		if calls["list"] != 1 || calls["get"] > 16 || len(calls) != 2 {
			t.Errorf("newest hour at %s: requests %v, want one list and at most 16 gets", clk.Now(), calls)
		}
		if i == 0 {
			hourBytes = int64(len(lines)) * int64(len(lines[0].Data)+60)
		}
		if got > 3*hourBytes {
			t.Errorf("newest hour at %s: read %d bytes, more than three hours' (%d)", clk.Now(), got, 3*hourBytes)
		}
	}
	s.minutes(24*60 - 24*60/7*7)
	if got := clk.Now().Sub(t0); got != 30*24*time.Hour {
		t.Fatalf("simulated %s, want 30 days", got)
	}
	keys, _ = segmentObjects(t, store)
	if len(keys) > 100 {
		t.Errorf("after 30 days: %d objects, want at most 100", len(keys))
	}
	checkAll(t, store, s.n)
	if st := s.r.Stats(); st.Parts != 30*24*60 || st.Compacted == 0 {
		t.Errorf("stats %+v", st)
	}
}

// isCompacted matches the keys of compacted objects.
func isCompacted(key string) bool {
	return strings.Contains(strings.TrimPrefix(key, Prefix(run, seg)), "/")
}

// TestCompactionFaults: whatever fails while compacting (the compacted
// object's write, its check, the deletes that follow it: a host dying
// between the write and the deletes), the history reads back whole, each
// line once; and a later Compact of the finished segment cleans up to one
// object.
func TestCompactionFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s3   bool
		rule faults.Rule
	}{
		{name: "deletes fail", rule: faults.Rule{Op: faults.OpDelete, Err: faults.Unreachable}},
		{name: "deletes fail, s3", s3: true, rule: faults.Rule{Op: faults.OpDelete, Err: faults.Unreachable}},
		{name: "some deletes fail", rule: faults.Rule{Op: faults.OpDelete, Err: faults.Transient, Prob: 0.3, Seed: 7}},
		{name: "compacted writes fail", rule: faults.Rule{Op: faults.OpPut, Key: isCompacted, Err: faults.Unreachable}},
		{name: "compacted writes fail, s3", s3: true, rule: faults.Rule{Op: faults.OpPut, Key: isCompacted, Err: faults.Unreachable}},
		{name: "compacted write's answer lost", rule: faults.Rule{Op: faults.OpPut, Key: isCompacted, Err: faults.Transient, LoseResponse: true, Times: 3}},
		{name: "checks fail", rule: faults.Rule{Op: faults.OpStat, Err: faults.Transient, Prob: 0.5, Seed: 3}},
		{name: "reads fail", rule: faults.Rule{Op: faults.OpGet, Err: faults.Transient, Prob: 0.2, Seed: 5}},
		{name: "listings fail", rule: faults.Rule{Op: faults.OpList, Err: faults.Unreachable, Times: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var inner storage.Store
			minutes := 3 * 60
			if tt.s3 {
				srv := s3test.Start(t, s3test.Versitygw)
				s, err := s3aws.New(t.Context(), srv.Config(srv.NewBucket(t), "ckpt"))
				if err != nil {
					t.Fatal(err)
				}
				inner, minutes = s, 80
			} else {
				inner = filetest.New(t)
			}
			store := faults.Wrap(inner, tt.rule)
			clk := fakeclock.New(t0)
			s := newSim(t, store, clk, 2)
			s.minutes(minutes)
			if store.Injected() == 0 {
				t.Fatal("no fault injected")
			}
			checkAll(t, inner, s.n)

			// The host is gone; the next baton (or baton checkpoint gc)
			// compacts what it left.
			st, err := Compact(t.Context(), inner, run, CompactOptions{Now: func() time.Time { return time.Now().Add(DefaultIdle + time.Minute) }})
			if err != nil {
				t.Fatalf("compact: %v", err)
			}
			if keys, _ := segmentObjects(t, inner); len(keys) != 1 || st.Segments != 1 {
				t.Errorf("after compacting the finished segment: objects %v (stats %+v), want one", keys, st)
			}
			checkAll(t, inner, s.n)
		})
	}
}

// TestCompactLeftSegment: a host that dies leaves parts and unfinished
// windows; Compact leaves a segment that may still be written alone but
// for its finished windows, compacts it whole once it is idle, and runs
// safely beside a live Recorder.
func TestCompactLeftSegment(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(t0)
	mem := newMemStore(clk.Now)
	// A Recorder with no compaction of its own: a mere Putter.
	s := newSim(t, putterOnly{mem}, clk, 2)
	s.minutes(150)
	before, _ := segmentObjects(t, mem)
	if len(before) != 150 {
		t.Fatalf("%d objects, want 150 parts", len(before))
	}

	compact := func(idle bool) CompactStats {
		t.Helper()
		now := clk.Now()
		if idle {
			now = now.Add(DefaultIdle)
		}
		st, err := Compact(t.Context(), mem, run, CompactOptions{Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		checkAll(t, mem, s.n)
		return st
	}
	// Live: 12:00 and 13:00 are finished hours, 14:00 and 14:10 finished
	// ten minutes; the ten parts from 14:20 may still be joined.
	compact(false)
	keys, _ := segmentObjects(t, mem)
	if len(keys) != 2+2+10 {
		t.Errorf("after compacting a live segment: %v, want 2 hours, 2 ten minutes and 10 parts", keys)
	}
	// The Recorder goes on; Compact runs again beside it.
	s.minutes(95)
	compact(false)
	s.minutes(10)
	// Idle: all of it in one day's object.
	st := compact(true)
	keys, _ = segmentObjects(t, mem)
	if len(keys) != 1 || !strings.Contains(keys[0], "/1d/000001-000255-20260501T120000Z") || st.Written == 0 {
		t.Errorf("after compacting the idle segment: %v (%+v), want one day", keys, st)
	}
}

// putterOnly hides every method of a store but Put.
type putterOnly struct{ s storage.Store }

func (p putterOnly) Put(ctx context.Context, key string, pl storage.Payload, o storage.PutOptions) (storage.ObjectInfo, error) {
	return p.s.Put(ctx, key, pl, o)
}

// TestReadRange reads windows of a compacted segment.
func TestReadRange(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(t0)
	mem := newMemStore(clk.Now)
	s := newSim(t, mem, clk, 2)
	s.minutes(26 * 60)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * s.step()) }
	tests := []struct {
		name         string
		since, until time.Time
		from, to     int
	}{
		{"all", time.Time{}, time.Time{}, 0, s.n},
		{"first minute", t0, t0.Add(time.Minute), 0, 2},
		{"an hour across a day", at(1400), at(1520), 1400, 1520},
		{"the tail", at(s.n - 7), time.Time{}, s.n - 7, s.n},
		{"after the end", at(s.n + 5), time.Time{}, 0, 0},
		{"before the start", t0.Add(-time.Hour), t0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines, err := ReadRange(t.Context(), mem, nil, run, seg, tt.since, tt.until)
			if err != nil {
				t.Fatal(err)
			}
			if is, _ := events(t, lines); !equalInts(is, seq(tt.from, tt.to)) {
				t.Errorf("events %v, want %d to %d", is, tt.from, tt.to-1)
			}
		})
	}
	segs, err := Segments(t.Context(), mem, run)
	if err != nil || len(segs) != 1 || segs[0] != seg {
		t.Errorf("segments %v (%v), want [%s]", segs, err, seg)
	}
}

// TestFigures measures what docs/telemetry.md reports: objects, bytes and
// requests after 1 and 30 days at the default settings, with a host
// reading and one GPU's reading every 5 s. It runs only with
// BATON_TELEMETRY_FIGURES=1 (it holds a month of telemetry in memory).
func TestFigures(t *testing.T) {
	if os.Getenv("BATON_TELEMETRY_FIGURES") == "" {
		t.Skip("set BATON_TELEMETRY_FIGURES=1 to measure")
	}
	clk := fakeclock.New(t0)
	store := counting(newMemStore(clk.Now))
	r, err := New(store, Options{Run: run, Segment: seg, Clock: clk.Now, Tick: make(chan time.Time)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(t.Context())
	u := func(v uint64) *uint64 { return &v }
	reading := host.Reading{Time: t0, IntervalSeconds: 5, CPUPercent: 37.5,
		Memory: host.Memory{TotalBytes: 2 << 40, UsedBytes: 1 << 40, AvailableBytes: 1 << 40},
		Disks: []host.Disk{
			{Role: "checkpoint", Path: "/workspace/ckpt", TotalBytes: 1 << 40, FreeBytes: 1 << 39, UsedBytes: 1 << 39, InodesTotal: 1 << 26, InodesFree: 1 << 25},
			{Role: "workspace", Path: "/workspace", TotalBytes: 1 << 40, FreeBytes: 1 << 39, UsedBytes: 1 << 39, InodesTotal: 1 << 26, InodesFree: 1 << 25}},
		Network: host.Network{RxBytes: 123456789012, TxBytes: 123456789012, RxBytesPerSecond: 1234567.5, TxBytesPerSecond: 1234567.5},
		Process: host.Process{PID: 1, CPUSeconds: 12345.5, RSSBytes: 67108864}}
	gpus := []map[string]any{{"time": t0, "gpu": 0, "uuid": "GPU-5fa3b1c2-0d1e-4f5a-9b8c-7d6e5f4a3b2c", "name": "NVIDIA H100 80GB HBM3",
		"pci_bus_id": "00000000:18:00.0", "util_gpu_pct": 97, "util_memory_pct": 41, "mem_used_bytes": u(71 << 30), "mem_free_bytes": u(9 << 30),
		"mem_reserved_bytes": u(1 << 29), "mem_total_bytes": u(80 << 30), "temp_c": 61, "power_w": 612.5, "power_limit_w": 700.0,
		"energy_j": 123456789.5, "sm_clock_mhz": 1980, "mem_clock_mhz": 2619, "clock_event_reasons": 0,
		"pcie_tx_bytes_per_sec": 1234567, "pcie_rx_bytes_per_sec": 7654321, "pcie_replays": 0, "slow_time": t0,
		"ecc_volatile_corrected": 0, "ecc_volatile_uncorrected": 0, "ecc_aggregate_uncorrected": 0,
		"remapped_rows_correctable": 0, "remapped_rows_uncorrectable": 0, "row_remap_pending": false, "row_remap_failed": false}}
	report := func(days int) {
		keys, size := segmentObjects(t, store)
		calls, got, put := store.reset()
		store.reset()
		lines, err := Newest(t.Context(), store, nil, run, seg, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		nc, ngot, _ := store.reset()
		t.Logf("after %d days: %d objects, %d bytes stored; compaction and parts took %v requests, %d bytes put, %d bytes got; newest hour: %d lines in %v requests, %d bytes",
			days, len(keys), size, calls, put, got, len(lines), nc, ngot)
	}
	minute := 0
	for _, days := range []int{1, 30} {
		for ; minute < days*24*60; minute++ {
			for range 12 {
				if err := r.Add(reading); err != nil {
					t.Fatal(err)
				}
				if err := r.Add(As("gpu", gpus)); err != nil {
					t.Fatal(err)
				}
				clk.Advance(5 * time.Second)
			}
			if err := r.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		report(days)
	}
}
