package doctor

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/batonrun/baton/agent/telemetry/gpu"
	"github.com/batonrun/baton/agent/telemetry/gpu/gputest"
)

// gpuState is what one mock GPU reports beyond gputest's busy, healthy H100.
type gpuState struct {
	eccUncorrected uint64
	remapPending   bool
	clockReasons   uint64
}

// newH100s returns gputest's H100 server (go-nvml's DGX H100 mock answering
// every query) with len(states) GPUs, each changed by its state.
func newH100s(states ...gpuState) *server.Server {
	srv := gputest.NewH100(len(states))
	for i, st := range states {
		d := gputest.Dev(srv, i)
		d.GetTotalEccErrorsFunc = func(t nvml.MemoryErrorType, c nvml.EccCounterType) (uint64, nvml.Return) {
			if t == nvml.MEMORY_ERROR_TYPE_UNCORRECTED && c == nvml.VOLATILE_ECC {
				return st.eccUncorrected, nvml.SUCCESS
			}
			return 0, nvml.SUCCESS
		}
		d.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 0, 0, st.remapPending, false, nvml.SUCCESS }
		if st.clockReasons != 0 {
			d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) { return st.clockReasons, nvml.SUCCESS }
			d.GetCurrentClocksThrottleReasonsFunc = func() (uint64, nvml.Return) { return st.clockReasons, nvml.SUCCESS }
		}
	}
	return srv
}

// openMock opens the telemetry of lib as baton doctor opens the real one.
func openMock(lib nvml.Interface) func(context.Context) (GPUs, error) {
	return func(context.Context) (GPUs, error) {
		s, err := gpu.Open(lib, gpu.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

func TestGPUs(t *testing.T) {
	healthy := gpuState{}
	noDriver := gputest.NewH100(1)
	noDriver.InitFunc = func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }
	brokenInit := gputest.NewH100(1)
	brokenInit.InitFunc = func() nvml.Return { return nvml.ERROR_UNKNOWN }
	type want struct {
		name     string
		status   Status
		required bool
		reason   string
	}
	cases := []struct {
		name       string
		lib        nvml.Interface
		noOpen     bool // OpenGPUs is nil
		requireGPU bool
		gpuCheck   string // BATON_GPU_CHECK
		platform   []string
		exit       int
		checks     []want
	}{
		{name: "healthy", lib: newH100s(healthy, healthy), exit: 0, checks: []want{
			{"gpu", OK, false, "2 x NVIDIA H100 80GB HBM3, driver 550.54.15, CUDA 12.4"},
			{"gpu.0", OK, true, "NVIDIA H100 80GB HBM3: 71680 of 81920 MiB used, 50°C, 612 W, 90% busy, healthy"},
			{"gpu.1", OK, true, "NVIDIA H100 80GB HBM3: 71680 of 81920 MiB used, 51°C, 612 W, 91% busy, healthy"},
		}},
		{name: "uncorrectable ECC errors", lib: newH100s(healthy, gpuState{eccUncorrected: 3}), exit: 1, checks: []want{
			{"gpu", OK, false, "2 x NVIDIA H100 80GB HBM3, driver 550.54.15, CUDA 12.4; unhealthy: gpu.1"},
			{"gpu.0", OK, true, "healthy"},
			{"gpu.1", Fail, true, "NVIDIA H100 80GB HBM3: 3 uncorrectable ECC errors since the driver was loaded"},
		}},
		{name: "pending row remap", lib: newH100s(gpuState{remapPending: true}), exit: 1, checks: []want{
			{"gpu.0", Fail, true, "a memory row waits for remapping"},
		}},
		{name: "unhealthy with --gpu-check off: reported, not required", lib: newH100s(gpuState{eccUncorrected: 1}), gpuCheck: "false", exit: 0, checks: []want{
			{"gpu.0", Fail, false, "uncorrectable ECC"},
		}},
		{name: "unhealthy with --require-gpu and --gpu-check off", lib: newH100s(gpuState{remapPending: true}), gpuCheck: "false", requireGPU: true, exit: 1, checks: []want{
			{"gpu.0", Fail, true, "remapping"},
		}},
		{name: "thermal slowdown warns", lib: newH100s(gpuState{clockReasons: nvml.ClocksThrottleReasonHwThermalSlowdown}), exit: 0, checks: []want{
			{"gpu.0", Warn, true, "clocks slowed down"},
		}},
		{name: "no driver", lib: noDriver, exit: 0, checks: []want{{"gpu", Warn, false, "no NVIDIA driver: GPU telemetry off"}}},
		{name: "no driver, no opener", noOpen: true, exit: 0, checks: []want{{"gpu", Warn, false, "no NVIDIA driver: GPU telemetry off"}}},
		{name: "no driver with --require-gpu", lib: noDriver, requireGPU: true, exit: 1, checks: []want{{"gpu", Fail, true, "no NVIDIA driver: GPU telemetry off"}}},
		{name: "NVML fails", lib: brokenInit, exit: 0, checks: []want{{"gpu", Warn, false, "NVML: gpu: nvml init: "}}},
		{name: "no GPU visible with --require-gpu", lib: newH100s(), requireGPU: true, exit: 1, checks: []want{{"gpu", Fail, true, "driver 550.54.15 but no GPU visible"}}},
		{name: "fewer GPUs than the platform gave", lib: newH100s(healthy), platform: []string{"RUNPOD_POD_ID=p", "RUNPOD_GPU_COUNT=2"}, exit: 1, checks: []want{
			{"gpu", Fail, true, "1 x NVIDIA H100 80GB HBM3, driver 550.54.15, CUDA 12.4; the platform says 2 GPUs"},
		}},
		{name: "fewer GPUs than the platform gave, --gpu-check off", lib: newH100s(healthy), gpuCheck: "false", platform: []string{"RUNPOD_POD_ID=p", "RUNPOD_GPU_COUNT=2"}, exit: 0, checks: []want{
			{"gpu", Warn, false, "1 x NVIDIA H100 80GB HBM3, driver 550.54.15, CUDA 12.4; the platform says 2 GPUs"},
		}},
		{name: "GPUs promised, no driver", lib: noDriver, platform: []string{"RUNPOD_POD_ID=p", "RUNPOD_GPU_COUNT=1"}, exit: 1, checks: []want{
			{"gpu", Fail, true, "no NVIDIA driver: GPU telemetry off; the platform promised 1 GPU"},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{}
			if c.gpuCheck != "" {
				env["BATON_GPU_CHECK"] = c.gpuCheck
			}
			o := baseOptions(t, env)
			o.Environ = c.platform
			o.RequireGPU = c.requireGPU
			if !c.noOpen {
				o.OpenGPUs = openMock(c.lib)
			}
			r := Run(t.Context(), o)
			for _, w := range c.checks {
				got := findCheck(t, r, w.name)
				if got.Status != w.status || got.Required != w.required || !strings.Contains(got.Reason, w.reason) {
					t.Errorf("%s = %+v\nwant %s, required %v, reason with %q", w.name, got, w.status, w.required, w.reason)
				}
			}
			if r.ExitCode != c.exit {
				t.Errorf("exit code %d, want %d: %+v", r.ExitCode, c.exit, r.Checks)
			}
		})
	}
}

func TestGPUFacts(t *testing.T) {
	o := baseOptions(t, nil)
	o.OpenGPUs = openMock(newH100s(gpuState{}, gpuState{eccUncorrected: 2}))
	r := Run(t.Context(), o)
	g := r.GPU
	if g == nil || g.Driver != "550.54.15" || g.CUDA != "12.4" || g.NVML != "12.550.54.15" || len(g.Devices) != 2 {
		t.Fatalf("GPU facts %+v", g)
	}
	d := g.Devices[1]
	if d.Index != 1 || d.Name != "NVIDIA H100 80GB HBM3" || d.MemTotalBytes != gputest.H100Total || d.Reading == nil || d.ECCVolatileUncorrected == nil || *d.ECCVolatileUncorrected != 2 ||
		len(d.Problems) != 1 || d.Problems[0].Kind != "ecc_uncorrectable" || !d.Problems[0].Fatal {
		t.Fatalf("device 1 %+v", d)
	}
	if len(g.Devices[0].Problems) != 0 || g.Devices[0].Problems == nil {
		t.Fatalf("device 0 problems %#v: want an empty list", g.Devices[0].Problems)
	}
}

// TestGPUOpenThatHangs: NVML's Init on a wedged driver must not hang doctor.
func TestGPUOpenThatHangs(t *testing.T) {
	defer func(d time.Duration) { gpuTimeout = d }(gpuTimeout)
	gpuTimeout = 100 * time.Millisecond
	release := make(chan struct{})
	defer close(release)
	lib := newH100s(gpuState{})
	lib.InitFunc = func() nvml.Return { <-release; return nvml.SUCCESS }
	o := baseOptions(t, nil)
	o.OpenGPUs = openMock(lib)
	r := runDespiteHang(t, o)
	if got := findCheck(t, r, "gpu"); got.Status != Warn || !strings.Contains(got.Reason, "no answer within 100ms") {
		t.Fatalf("gpu = %+v", got)
	}
}
