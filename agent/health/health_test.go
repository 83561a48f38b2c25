package health

import (
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/agent/telemetry/gpu"
)

func reading(util uint32, power, limit float64) gpu.Reading {
	r := gpu.Reading{UtilGPU: &util}
	if power >= 0 {
		r.PowerW = &power
	}
	if limit >= 0 {
		r.PowerLimitW = &limit
	}
	return r
}

func TestClassify(t *testing.T) {
	t.Parallel()
	noUtil := gpu.Reading{}
	cases := []struct {
		name string
		rs   []gpu.Reading
		want GPUState
	}{
		{"no readings", nil, GPUUnknown},
		{"no utilisation reading", []gpu.Reading{noUtil}, GPUUnknown},
		{"all idle", []gpu.Reading{reading(0, 70, 700), reading(5, 70, 700)}, GPUIdle},
		{"one working", []gpu.Reading{reading(0, 70, 700), reading(60, 400, 700)}, GPUWorking},
		{"full and hot", []gpu.Reading{reading(100, 650, 700)}, GPUWorking},
		{"pinned at low power", []gpu.Reading{reading(100, 120, 700)}, GPUStuck},
		{"pinned and idle", []gpu.Reading{reading(100, 120, 700), reading(0, 70, 700)}, GPUStuck},
		{"pinned and working", []gpu.Reading{reading(100, 120, 700), reading(80, 500, 700)}, GPUWorking},
		{"full without power reading", []gpu.Reading{reading(100, -1, -1)}, GPUWorking},
		{"full without power limit", []gpu.Reading{reading(100, 100, -1)}, GPUWorking},
		{"just above idle", []gpu.Reading{reading(6, 80, 700)}, GPUWorking},
		{"GPU without utilisation skipped", []gpu.Reading{noUtil, reading(0, 70, 700)}, GPUIdle},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Classify(c.rs); got != c.want {
				t.Errorf("Classify = %v, want %v", got, c.want)
			}
		})
	}
}

func TestHang(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type step struct {
		at       time.Duration
		progress bool // output or checkpoint at this time
		reset    bool
		state    GPUState
		hung     bool
	}
	cases := []struct {
		name    string
		timeout time.Duration
		steps   []step
	}{
		{"idle GPUs and silence", 10 * time.Minute, []step{
			{at: 5 * time.Minute, state: GPUIdle},
			{at: 9*time.Minute + 59*time.Second, state: GPUIdle},
			{at: 10 * time.Minute, state: GPUIdle, hung: true},
		}},
		{"output keeps it alive", 10 * time.Minute, []step{
			{at: 8 * time.Minute, progress: true, state: GPUIdle},
			{at: 15 * time.Minute, state: GPUIdle},
			{at: 18 * time.Minute, state: GPUIdle, hung: true},
		}},
		{"working GPUs keep a silent trainer alive", 10 * time.Minute, []step{
			{at: 9 * time.Minute, state: GPUWorking},
			{at: 30 * time.Minute, state: GPUWorking},
			{at: 39 * time.Minute, state: GPUStuck},
			{at: 40 * time.Minute, state: GPUStuck, hung: true},
		}},
		{"no telemetry: output alone decides", 10 * time.Minute, []step{
			{at: 9 * time.Minute, state: GPUUnknown},
			{at: 10 * time.Minute, state: GPUUnknown, hung: true},
		}},
		{"reset after a restart", 10 * time.Minute, []step{
			{at: 10 * time.Minute, state: GPUIdle, hung: true},
			{at: 10 * time.Minute, reset: true, state: GPUIdle},
			{at: 19 * time.Minute, state: GPUIdle},
			{at: 20 * time.Minute, state: GPUIdle, hung: true},
		}},
		{"off", 0, []step{
			{at: 100 * time.Hour, state: GPUIdle},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := NewHang(c.timeout, t0)
			for i, s := range c.steps {
				if s.progress {
					h.Progress(at(s.at))
				}
				if s.reset {
					h.Reset(at(s.at))
				}
				v := h.Observe(at(s.at), s.state)
				if (v != nil) != s.hung {
					t.Fatalf("step %d (%v): verdict %v, want hung=%v", i, s.at, v, s.hung)
				}
				if v != nil && (v.Quiet < c.timeout || !strings.Contains(v.String(), "no output and no checkpoint")) {
					t.Errorf("step %d: verdict %q (quiet %v) does not report the silence", i, v, v.Quiet)
				}
			}
		})
	}
}

func TestVerdictString(t *testing.T) {
	t.Parallel()
	v := Verdict{Quiet: 30 * time.Minute, GPUs: GPUStuck}
	if got, want := v.String(), "no output and no checkpoint for 30m0s (its GPUs pinned at 100% at low power)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	v.GPUs = GPUUnknown
	if !strings.Contains(v.String(), "no GPU telemetry") {
		t.Errorf("String = %q, want it to say there was no GPU telemetry", v.String())
	}
}
