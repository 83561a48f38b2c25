package gpu

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// The H100 the mock answers like: go-nvml's DGX H100 server model gives the
// devices (name, memory, PCI device id, driver 550.54.15, CUDA 12.4); it
// answers none of the telemetry queries, so setH100 adds them.
const (
	gib = 1 << 30

	h100Total    = 81920 * mib // gpus.H100_SXM5_80GB.MemoryMB
	h100Reserved = 512 * mib
	h100Used     = 70 * gib
)

// newH100 returns a DGX H100 model cut down to n GPUs, each answering every
// query the Sampler makes. Events are unsupported unless a test says otherwise.
func newH100(n int) *server.Server {
	srv := dgxh100.New()
	srv.Devices = srv.Devices[:n]
	for i := range srv.Devices {
		setH100(dev(srv, i), i)
	}
	srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return nil, nvml.ERROR_NOT_SUPPORTED }
	return srv
}

func dev(srv *server.Server, i int) *server.Device { return srv.Devices[i].(*server.Device) }

func uuidOf(i int) string { return fmt.Sprintf("GPU-00000000-0000-0000-0000-%012d", i) }

func busOf(i int) string { return fmt.Sprintf("00000000:%02X:00.0", 0x18+0x10*i) }

// setH100 makes device i answer like a busy H100 SXM5 80GB; values differ by i
// where that helps tell the GPUs apart.
func setH100(d *server.Device, i int) {
	d.UUID = uuidOf(i)
	d.PciBusID = busOf(i)
	d.GetPciInfoFunc = func() (nvml.PciInfo, nvml.Return) {
		p := nvml.PciInfo{PciDeviceId: d.Config.PciDeviceId}
		for j, c := range d.PciBusID {
			p.BusId[j] = int8(c)
		}
		return p, nvml.SUCCESS
	}
	d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
		return nvml.Memory{Total: h100Total, Used: h100Used + h100Reserved, Free: h100Total - h100Used - h100Reserved}, nvml.SUCCESS
	}
	d.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
		return nvml.Memory_v2{Total: h100Total, Reserved: h100Reserved, Used: h100Used, Free: h100Total - h100Used - h100Reserved}, nvml.SUCCESS
	}
	d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		return nvml.Utilization{Gpu: uint32(90 + i), Memory: uint32(40 + i)}, nvml.SUCCESS
	}
	d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return uint32(50 + i), nvml.SUCCESS }
	d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 612345, nvml.SUCCESS }
	d.GetEnforcedPowerLimitFunc = func() (uint32, nvml.Return) { return 700000, nvml.SUCCESS }
	d.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { return 123456789, nvml.SUCCESS }
	d.GetClockInfoFunc = func(c nvml.ClockType) (uint32, nvml.Return) {
		switch c {
		case nvml.CLOCK_SM:
			return 1980, nvml.SUCCESS
		case nvml.CLOCK_MEM:
			return 2619, nvml.SUCCESS
		}
		return 0, nvml.ERROR_INVALID_ARGUMENT
	}
	reasons := uint64(nvml.ClocksEventReasonSwPowerCap)
	if i > 0 {
		reasons = nvml.ClocksEventReasonGpuIdle
	}
	d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) { return reasons, nvml.SUCCESS }
	d.GetCurrentClocksThrottleReasonsFunc = func() (uint64, nvml.Return) { return reasons, nvml.SUCCESS }
	d.GetPcieThroughputFunc = func(c nvml.PcieUtilCounter) (uint32, nvml.Return) {
		if c == nvml.PCIE_UTIL_TX_BYTES {
			return 1000, nvml.SUCCESS
		}
		return 2000, nvml.SUCCESS
	}
	d.GetPcieReplayCounterFunc = func() (int, nvml.Return) { return 3, nvml.SUCCESS }
	d.GetTotalEccErrorsFunc = func(t nvml.MemoryErrorType, c nvml.EccCounterType) (uint64, nvml.Return) {
		if t == nvml.MEMORY_ERROR_TYPE_CORRECTED && c == nvml.VOLATILE_ECC {
			return 5, nvml.SUCCESS
		}
		return 0, nvml.SUCCESS
	}
	d.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 1, 0, false, false, nvml.SUCCESS }
	d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		return []nvml.ProcessInfo{{Pid: uint32(4242 + i), UsedGpuMemory: h100Used}}, nvml.SUCCESS
	}
	d.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) {
		return nvml.EventTypeXidCriticalError | nvml.EventTypeDoubleBitEccError | nvml.EventTypeSingleBitEccError |
			nvml.EventTypePState | nvml.EventTypeClock, nvml.SUCCESS
	}
	d.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logBuf collects the Sampler's log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// count returns how many lines contain every one of subs.
func (l *logBuf) count(subs ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for line := range strings.Lines(l.b.String()) {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// harness is a Sampler on a mock, with a fake clock, captured logs and a
// ticker the test drives.
type harness struct {
	t     *testing.T
	srv   *server.Server
	s     *Sampler
	clock *fakeClock
	logs  *logBuf
	tick  chan time.Time
}

func open(t *testing.T, srv *server.Server, opts Options) *harness {
	t.Helper()
	h := &harness{t: t, srv: srv, clock: newClock(), logs: &logBuf{}, tick: make(chan time.Time)}
	opts.Clock = h.clock.Now
	opts.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Open(srv, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s.newTicker = func(time.Duration) (<-chan time.Time, func()) { return h.tick, func() {} }
	s.errBackoff = 0
	h.s = s
	return h
}

// running is a Run in progress.
type running struct {
	t      *testing.T
	cancel context.CancelFunc
	done   chan error
}

// run starts Run.
func (h *harness) run() *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{t: h.t, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- h.s.Run(ctx) }()
	return r
}

// wait returns Run's error.
func (r *running) wait() error { return within(r.t, r.done) }

// stop cancels Run and returns its error.
func (r *running) stop() error {
	r.cancel()
	return r.wait()
}

// within waits for a value; the limit only turns a hang into a failure.
func within[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timed out: something blocked")
		var zero T
		return zero
	}
}

// eventQueue is an EventSet whose Wait hands out what the test pushes.
type eventQueue struct {
	mock.EventSet
	q    chan waitResult
	done chan struct{}
}

type waitResult struct {
	data nvml.EventData
	ret  nvml.Return
}

func newEventQueue() *eventQueue {
	e := &eventQueue{q: make(chan waitResult), done: make(chan struct{})}
	e.WaitFunc = func(uint32) (nvml.EventData, nvml.Return) {
		select {
		case r := <-e.q:
			return r.data, r.ret
		case <-e.done:
			return nvml.EventData{}, nvml.ERROR_TIMEOUT
		}
	}
	e.FreeFunc = func() nvml.Return { return nvml.SUCCESS }
	return e
}

// push hands the watcher one result of Wait; it returns once the watcher has
// taken it, that is once the watcher is done with the result before.
func (e *eventQueue) push(t *testing.T, data nvml.EventData, ret nvml.Return) {
	t.Helper()
	select {
	case e.q <- waitResult{data, ret}:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out: the watcher is not waiting")
	}
}

// end makes every later Wait time out at once, as NVML's does after its
// timeout, so that a watcher whose context ended sees it and stops.
func (e *eventQueue) end() { close(e.done) }
