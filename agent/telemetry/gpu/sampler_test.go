package gpu

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

func TestOpenInfo(t *testing.T) {
	t.Parallel()
	h := open(t, newH100(2), Options{})
	got := h.s.Info()
	want := Info{
		Driver: "550.54.15",
		CUDA:   "12.4",
		NVML:   "12.550.54.15",
		Devices: []Device{
			{Index: 0, UUID: uuidOf(0), Name: "NVIDIA H100 80GB HBM3", PCIBusID: busOf(0), MemTotal: h100Total, Minor: 0},
			{Index: 1, UUID: uuidOf(1), Name: "NVIDIA H100 80GB HBM3", PCIBusID: busOf(1), MemTotal: h100Total, Minor: 1},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Info() = %+v\nwant %+v", got, want)
	}
}

func TestCUDAVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   int
		want string
	}{{12040, "12.4"}, {13000, "13.0"}, {12080, "12.8"}, {11020, "11.2"}} {
		if got := cudaVersion(tc.in); got != tc.want {
			t.Errorf("cudaVersion(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		init         nvml.Return
		count        nvml.Return
		noDriver     bool
		wantIs       error
		wantShutdown int
	}{
		{name: "library not found", init: nvml.ERROR_LIBRARY_NOT_FOUND, noDriver: true, wantIs: nvml.ERROR_LIBRARY_NOT_FOUND},
		{name: "driver not loaded", init: nvml.ERROR_DRIVER_NOT_LOADED, noDriver: true, wantIs: nvml.ERROR_DRIVER_NOT_LOADED},
		{name: "no permission", init: nvml.ERROR_NO_PERMISSION, wantIs: nvml.ERROR_NO_PERMISSION},
		{name: "device count fails", init: nvml.SUCCESS, count: nvml.ERROR_UNKNOWN, wantIs: nvml.ERROR_UNKNOWN, wantShutdown: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newH100(1)
			srv.InitFunc = func() nvml.Return { return tc.init }
			if tc.count != nvml.SUCCESS {
				srv.DeviceGetCountFunc = func() (int, nvml.Return) { return 0, tc.count }
			}
			s, err := Open(srv, Options{})
			if err == nil || s != nil {
				t.Fatalf("Open = %v, %v; want an error", s, err)
			}
			if got := errors.Is(err, ErrNoDriver); got != tc.noDriver {
				t.Errorf("errors.Is(%v, ErrNoDriver) = %v, want %v", err, got, tc.noDriver)
			}
			if !errors.Is(err, tc.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.wantIs)
			}
			if n := len(srv.ShutdownCalls()); n != tc.wantShutdown {
				t.Errorf("Shutdown called %d times, want %d", n, tc.wantShutdown)
			}
		})
	}
}

// TestOpenRealLibrary opens the host's NVML. Without a driver (the usual test
// machine) that is ErrNoDriver; with one, a full round must answer for every GPU.
func TestOpenRealLibrary(t *testing.T) {
	t.Parallel()
	s, err := Open(New(), Options{})
	if err != nil {
		if !errors.Is(err, ErrNoDriver) {
			t.Fatalf("Open(New()) = %v, want ErrNoDriver on a host without a driver", err)
		}
		t.Logf("no driver here: %v", err)
		return
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	info := s.Info()
	t.Logf("driver %s, CUDA %s, NVML %s, %d GPUs", info.Driver, info.CUDA, info.NVML, len(info.Devices))
	rs := s.SampleOnce(context.Background())
	if len(rs) != len(info.Devices) {
		t.Fatalf("SampleOnce returned %d readings for %d GPUs", len(rs), len(info.Devices))
	}
	for _, r := range rs {
		b, _ := json.Marshal(r)
		t.Logf("%s", b)
		for _, p := range Check(r) {
			t.Logf("problem: %+v", p)
		}
	}
	t.Logf("round cost %v", s.SampleCost())
}

func TestSampleOnceReadsEveryQuery(t *testing.T) {
	t.Parallel()
	h := open(t, newH100(2), Options{})
	rs := h.s.SampleOnce(context.Background())
	if len(rs) != 2 {
		t.Fatalf("got %d readings, want 2", len(rs))
	}
	now := h.clock.Now()
	want := Reading{
		Time: now, Index: 0, UUID: uuidOf(0), Name: "NVIDIA H100 80GB HBM3", PCIBusID: busOf(0),
		UtilGPU: ptr[uint32](90), UtilMemory: ptr[uint32](40),
		MemUsed: ptr[uint64](h100Used), MemFree: ptr[uint64](h100Total - h100Used - h100Reserved),
		MemReserved: ptr[uint64](h100Reserved), MemTotal: ptr[uint64](h100Total),
		TempC: ptr[uint32](50), PowerW: ptr(612.345), PowerLimitW: ptr(700.0), EnergyJ: ptr(123456.789),
		SMClockMHz: ptr[uint32](1980), MemClockMHz: ptr[uint32](2619),
		ClockEventReasons: ptr[uint64](4), ClockEvents: []string{"sw_power_cap"},
		PCIeTxBytesPerSec: ptr[uint64](1000 * 1024), PCIeRxBytesPerSec: ptr[uint64](2000 * 1024), PCIeReplays: ptr[uint32](3),
		SlowTime:             now,
		ECCVolatileCorrected: ptr[uint64](5), ECCVolatileUncorrected: ptr[uint64](0), ECCAggregateUncorrected: ptr[uint64](0),
		RemappedCorrectable: ptr[uint32](1), RemappedUncorrectable: ptr[uint32](0), RemapPending: ptr(false), RemapFailed: ptr(false),
		Processes: []Process{{PID: 4242, UsedMemory: ptr[uint64](h100Used)}},
	}
	if !reflect.DeepEqual(rs[0], want) {
		got, _ := json.MarshalIndent(rs[0], "", " ")
		exp, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("reading of GPU 0:\n%s\nwant\n%s", got, exp)
	}
	if got := rs[1]; got.Index != 1 || got.UUID != uuidOf(1) || *got.UtilGPU != 91 || *got.TempC != 51 ||
		!reflect.DeepEqual(got.ClockEvents, []string{"gpu_idle"}) {
		t.Errorf("reading of GPU 1 = %+v", got)
	}
	if !reflect.DeepEqual(h.s.Latest(), rs) {
		t.Errorf("Latest() differs from what SampleOnce returned")
	}
	if h.logs.String() != "" {
		t.Errorf("a clean round logged:\n%s", h.logs)
	}
}

func TestReadingCopiesAreIndependent(t *testing.T) {
	t.Parallel()
	h := open(t, newH100(1), Options{})
	a := h.s.SampleOnce(context.Background())
	*a[0].UtilGPU = 0
	a[0].Processes[0].PID = 1
	b := h.s.Latest()
	if *b[0].UtilGPU != 90 || b[0].Processes[0].PID != 4242 {
		t.Errorf("changing one caller's reading changed Latest: %+v", b[0])
	}
}

func TestReadingJSONOmitsUnsupported(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(Reading{Index: 3, UUID: "GPU-x", TempC: ptr[uint32](40)})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"gpu":3`, `"temp_c":40`, `"xid_errors":0`} {
		if !strings.Contains(s, want) {
			t.Errorf("JSON %s lacks %s", s, want)
		}
	}
	for _, absent := range []string{`"util_gpu_pct"`, `"power_w"`, `"slow_time"`, `"processes"`, `"lost"`, `"errors"`} {
		if strings.Contains(s, absent) {
			t.Errorf("JSON %s has %s", s, absent)
		}
	}
}

// queryCase is one reading path: how to make it fail on a device, and whether
// the fields it fills are set.
type queryCase struct {
	query string
	fail  func(d *server.Device, ret nvml.Return)
	set   func(r Reading) bool // whether the fields the query fills are set
}

func queryCases() []queryCase {
	return []queryCase{
		{qUtilization, func(d *server.Device, ret nvml.Return) {
			d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, ret }
		}, func(r Reading) bool { return r.UtilGPU != nil && r.UtilMemory != nil }},
		{qMemory, func(d *server.Device, ret nvml.Return) {
			d.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) { return nvml.Memory_v2{}, ret }
			d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{}, ret }
		}, func(r Reading) bool {
			return r.MemUsed != nil && r.MemFree != nil && r.MemReserved != nil && r.MemTotal != nil
		}},
		{qTemperature, func(d *server.Device, ret nvml.Return) {
			d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, ret }
		}, func(r Reading) bool { return r.TempC != nil }},
		{qPower, func(d *server.Device, ret nvml.Return) {
			d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, ret }
		}, func(r Reading) bool { return r.PowerW != nil }},
		{qPowerLimit, func(d *server.Device, ret nvml.Return) {
			d.GetEnforcedPowerLimitFunc = func() (uint32, nvml.Return) { return 0, ret }
		}, func(r Reading) bool { return r.PowerLimitW != nil }},
		{qEnergy, func(d *server.Device, ret nvml.Return) {
			d.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { return 0, ret }
		}, func(r Reading) bool { return r.EnergyJ != nil }},
		{qSMClock, func(d *server.Device, ret nvml.Return) { failFor(&d.GetClockInfoFunc, nvml.CLOCK_SM, ret) },
			func(r Reading) bool { return r.SMClockMHz != nil }},
		{qMemClock, func(d *server.Device, ret nvml.Return) { failFor(&d.GetClockInfoFunc, nvml.CLOCK_MEM, ret) },
			func(r Reading) bool { return r.MemClockMHz != nil }},
		{qClockEvents, func(d *server.Device, ret nvml.Return) {
			d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) { return 0, ret }
			d.GetCurrentClocksThrottleReasonsFunc = func() (uint64, nvml.Return) { return 0, ret }
		}, func(r Reading) bool { return r.ClockEventReasons != nil && r.ClockEvents != nil }},
		{qPCIeTx, func(d *server.Device, ret nvml.Return) {
			failFor(&d.GetPcieThroughputFunc, nvml.PCIE_UTIL_TX_BYTES, ret)
		},
			func(r Reading) bool { return r.PCIeTxBytesPerSec != nil }},
		{qPCIeRx, func(d *server.Device, ret nvml.Return) {
			failFor(&d.GetPcieThroughputFunc, nvml.PCIE_UTIL_RX_BYTES, ret)
		},
			func(r Reading) bool { return r.PCIeRxBytesPerSec != nil }},
		{qPCIeReplays, func(d *server.Device, ret nvml.Return) {
			d.GetPcieReplayCounterFunc = func() (int, nvml.Return) { return 0, ret }
		}, func(r Reading) bool { return r.PCIeReplays != nil }},
		{qECCVolCorr, failECC(nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.VOLATILE_ECC),
			func(r Reading) bool { return r.ECCVolatileCorrected != nil }},
		{qECCVolUncorr, failECC(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC),
			func(r Reading) bool { return r.ECCVolatileUncorrected != nil }},
		{qECCAggUncorr, failECC(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.AGGREGATE_ECC),
			func(r Reading) bool { return r.ECCAggregateUncorrected != nil }},
		{qRemappedRows, func(d *server.Device, ret nvml.Return) {
			d.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 0, 0, false, false, ret }
		}, func(r Reading) bool {
			return r.RemappedCorrectable != nil && r.RemappedUncorrectable != nil && r.RemapPending != nil && r.RemapFailed != nil
		}},
		{qProcesses, func(d *server.Device, ret nvml.Return) {
			d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, ret }
		}, func(r Reading) bool { return r.Processes != nil }},
	}
}

// failFor makes the mock's *fn fail with ret when asked for key, and answer
// as before when asked for anything else: one clock, one PCIe counter.
func failFor[K comparable](fn *func(K) (uint32, nvml.Return), key K, ret nvml.Return) {
	old := *fn
	*fn = func(k K) (uint32, nvml.Return) {
		if k == key {
			return 0, ret
		}
		return old(k)
	}
}

// failECC makes the reading of one ECC error counter fail; the others still
// answer.
func failECC(typ nvml.MemoryErrorType, counter nvml.EccCounterType) func(*server.Device, nvml.Return) {
	return func(d *server.Device, ret nvml.Return) {
		old := d.GetTotalEccErrorsFunc
		d.GetTotalEccErrorsFunc = func(t nvml.MemoryErrorType, c nvml.EccCounterType) (uint64, nvml.Return) {
			if t == typ && c == counter {
				return 0, ret
			}
			return old(t, c)
		}
	}
}

// allSetBut reports which queries other than except left their fields empty.
func allSetBut(r Reading, except string) []string {
	var missing []string
	for _, q := range queryCases() {
		if q.query != except && !q.set(r) {
			missing = append(missing, q.query)
		}
	}
	return missing
}

// TestUnsupportedQuery: a query the driver does not support leaves its field
// nil on that GPU only, is not an error, and is logged once per GPU however
// many rounds run.
func TestUnsupportedQuery(t *testing.T) {
	t.Parallel()
	for _, ret := range []nvml.Return{nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_FUNCTION_NOT_FOUND} {
		for _, q := range queryCases() {
			t.Run(q.query+"/"+ret.Error(), func(t *testing.T) {
				srv := newH100(2)
				q.fail(dev(srv, 0), ret)
				h := open(t, srv, Options{})
				var rs []Reading
				for range 3 {
					rs = h.s.SampleOnce(context.Background())
				}
				if q.set(rs[0]) {
					t.Errorf("GPU 0: %s fields are set although unsupported: %+v", q.query, rs[0])
				}
				if m := allSetBut(rs[0], q.query); m != nil {
					t.Errorf("GPU 0: other queries left empty: %v", m)
				}
				if m := allSetBut(rs[1], ""); m != nil {
					t.Errorf("GPU 1: queries left empty: %v", m)
				}
				if rs[0].Errors != nil || rs[0].Lost {
					t.Errorf("GPU 0: an unsupported query counts as an error: %v", rs[0].Errors)
				}
				if n := h.logs.count("gpu=0", "query="+q.query+" "); n != 1 {
					t.Errorf("logged %d times for GPU 0, want once:\n%s", n, h.logs)
				}
				if n := h.logs.count("gpu=1"); n != 0 {
					t.Errorf("logged about GPU 1:\n%s", h.logs)
				}
			})
		}
	}
}

// TestQueryErrorMidRound: a query that fails leaves its field nil, is
// recorded in Reading.Errors, does not stop the rest of the round, and is
// logged once.
func TestQueryErrorMidRound(t *testing.T) {
	t.Parallel()
	for _, q := range queryCases() {
		t.Run(q.query, func(t *testing.T) {
			srv := newH100(2)
			q.fail(dev(srv, 0), nvml.ERROR_UNKNOWN)
			h := open(t, srv, Options{})
			var rs []Reading
			for range 3 {
				rs = h.s.SampleOnce(context.Background())
			}
			if q.set(rs[0]) {
				t.Errorf("GPU 0: %s fields set although the query failed", q.query)
			}
			if m := allSetBut(rs[0], q.query); m != nil {
				t.Errorf("GPU 0: the failure stopped other queries: %v", m)
			}
			if m := allSetBut(rs[1], ""); m != nil {
				t.Errorf("GPU 1: queries left empty: %v", m)
			}
			wantErr := q.query + ": " + nvml.ERROR_UNKNOWN.Error()
			if !reflect.DeepEqual(rs[0].Errors, []string{wantErr}) {
				t.Errorf("GPU 0 Errors = %q, want [%q]", rs[0].Errors, wantErr)
			}
			if rs[0].Lost || Check(rs[0]) != nil {
				t.Errorf("an unknown error made the GPU lost or unhealthy: %+v", Check(rs[0]))
			}
			if n := h.logs.count("level=WARN", "gpu=0", "query="+q.query+" "); n != 1 {
				t.Errorf("logged %d times, want once:\n%s", n, h.logs)
			}
		})
	}
}

func TestGPULost(t *testing.T) {
	t.Parallel()
	srv := newH100(2)
	queryCases()[0].fail(dev(srv, 1), nvml.ERROR_GPU_IS_LOST)
	h := open(t, srv, Options{})
	rs := h.s.SampleOnce(context.Background())
	if rs[0].Lost || !rs[1].Lost {
		t.Fatalf("Lost = %v, %v; want false, true", rs[0].Lost, rs[1].Lost)
	}
	ps := Check(rs[1])
	if len(ps) != 1 || ps[0].Kind != "gpu_lost" || !ps[0].Fatal || ps[0].UUID != uuidOf(1) {
		t.Errorf("Check = %+v, want one fatal gpu_lost", ps)
	}
}

func TestFallbacks(t *testing.T) {
	t.Parallel()
	t.Run("memory v1 when v2 is missing", func(t *testing.T) {
		srv := newH100(1)
		dev(srv, 0).GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) { return nvml.Memory_v2{}, nvml.ERROR_FUNCTION_NOT_FOUND }
		h := open(t, srv, Options{})
		r := h.s.SampleOnce(context.Background())[0]
		if r.MemReserved != nil || r.MemTotal == nil || *r.MemTotal != h100Total || *r.MemUsed != h100Used+h100Reserved || r.Errors != nil {
			t.Errorf("reading = %+v", r)
		}
	})
	t.Run("throttle reasons when event reasons are missing", func(t *testing.T) {
		srv := newH100(1)
		d := dev(srv, 0)
		d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) { return 0, nvml.ERROR_FUNCTION_NOT_FOUND }
		d.GetCurrentClocksThrottleReasonsFunc = func() (uint64, nvml.Return) {
			return nvml.ClocksThrottleReasonHwThermalSlowdown, nvml.SUCCESS
		}
		h := open(t, srv, Options{})
		r := h.s.SampleOnce(context.Background())[0]
		if r.ClockEventReasons == nil || *r.ClockEventReasons != 0x40 || !reflect.DeepEqual(r.ClockEvents, []string{"hw_thermal_slowdown"}) {
			t.Errorf("reading = %+v", r)
		}
		if n := len(d.GetCurrentClocksThrottleReasonsCalls()); n != 1 {
			t.Errorf("throttle reasons asked %d times, want 1", n)
		}
	})
	t.Run("process memory not available", func(t *testing.T) {
		srv := newH100(1)
		dev(srv, 0).GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
			return []nvml.ProcessInfo{{Pid: 7, UsedGpuMemory: ^uint64(0)}}, nvml.SUCCESS
		}
		h := open(t, srv, Options{})
		r := h.s.SampleOnce(context.Background())[0]
		if !reflect.DeepEqual(r.Processes, []Process{{PID: 7}}) {
			t.Errorf("Processes = %+v", r.Processes)
		}
	})
}

func TestSlowQueriesEverySlowEvery(t *testing.T) {
	t.Parallel()
	srv := newH100(2)
	var tx atomic.Uint32
	for i := range 2 {
		d := dev(srv, i)
		d.GetPcieThroughputFunc = func(c nvml.PcieUtilCounter) (uint32, nvml.Return) {
			if c == nvml.PCIE_UTIL_TX_BYTES && i == 0 {
				return tx.Add(1), nvml.SUCCESS // 1 at round 0, 2 at round 3
			}
			return 7, nvml.SUCCESS
		}
	}
	// The last query of a round (GPU 1's processes) holds the round until the
	// test has moved the clock on, so that round k reads the time start+k s.
	roundEnd, resume := make(chan struct{}), make(chan struct{})
	dev(srv, 1).GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		roundEnd <- struct{}{}
		<-resume
		return nil, nvml.SUCCESS
	}
	h := open(t, srv, Options{SlowEvery: 3})
	start := h.clock.Now()
	run := h.run()
	for k := 0; k <= 4; k++ { // slow rounds: 0 and 3
		within(t, roundEnd)
		h.clock.Advance(time.Second)
		resume <- struct{}{}
		if k < 4 {
			h.tick <- time.Time{}
		}
	}
	if err := run.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for i := range 2 {
		d := dev(srv, i)
		if n := len(d.GetUtilizationRatesCalls()); n != 5 {
			t.Errorf("GPU %d: %d fast rounds, want 5", i, n)
		}
		if n := len(d.GetPcieThroughputCalls()); n != 4 {
			t.Errorf("GPU %d: GetPcieThroughput called %d times, want 4 (2 slow rounds, 2 directions)", i, n)
		}
		if n := len(d.GetPcieReplayCounterCalls()); n != 2 {
			t.Errorf("GPU %d: GetPcieReplayCounter called %d times, want 2", i, n)
		}
	}
	r := h.s.Latest()[0]
	if want := start.Add(4 * time.Second); !r.Time.Equal(want) {
		t.Errorf("latest reading at %v, want round 4 at %v", r.Time, want)
	}
	if want := start.Add(3 * time.Second); !r.SlowTime.Equal(want) {
		t.Errorf("slow fields from %v, want round 3 at %v", r.SlowTime, want)
	}
	if r.PCIeTxBytesPerSec == nil || *r.PCIeTxBytesPerSec != 2*1024 || r.PCIeReplays == nil {
		t.Errorf("round 4 does not carry round 3's slow values: %+v", r)
	}
}

// TestLatestDoesNotWaitForNVML holds a round inside an NVML call and checks
// that Latest and a scrape answer with the previous round meanwhile.
func TestLatestDoesNotWaitForNVML(t *testing.T) {
	t.Parallel()
	srv := newH100(2)
	var (
		block   atomic.Bool
		calls   atomic.Uint32
		entered = make(chan struct{})
		release = make(chan struct{})
	)
	h := open(t, srv, Options{})
	dev(srv, 0).GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		n := calls.Add(1)
		if block.Load() {
			h.clock.Advance(25 * time.Millisecond)
			entered <- struct{}{}
			<-release
		}
		return nvml.Utilization{Gpu: n}, nvml.SUCCESS
	}
	first := h.s.SampleOnce(context.Background())
	if *first[0].UtilGPU != 1 || h.s.SampleCost() != 0 {
		t.Fatalf("first round: util %d, cost %v", *first[0].UtilGPU, h.s.SampleCost())
	}

	block.Store(true)
	done := make(chan []Reading, 1)
	go func() { done <- h.s.SampleOnce(context.Background()) }()
	within(t, entered) // the second round is now inside GetUtilizationRates

	latest := make(chan []Reading, 1)
	go func() { latest <- h.s.Latest() }()
	if got := within(t, latest); len(got) != 2 || *got[0].UtilGPU != 1 {
		t.Errorf("Latest during a stuck round = %+v, want the first round", got)
	}
	scraped := make(chan int, 1)
	go func() { scraped <- countSeries(t, h.s.Collector("host")) }()
	if n := within(t, scraped); n == 0 {
		t.Errorf("a scrape during a stuck round exported nothing")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	once := make(chan []Reading, 1)
	go func() { once <- h.s.SampleOnce(ctx) }()
	if got := within(t, once); got != nil {
		t.Errorf("SampleOnce with an ended context = %+v, want nil", got)
	}

	close(release)
	second := within(t, done)
	if *second[0].UtilGPU != 2 || *h.s.Latest()[0].UtilGPU != 2 {
		t.Errorf("second round util = %d, want 2", *second[0].UtilGPU)
	}
	if got := h.s.SampleCost(); got != 25*time.Millisecond {
		t.Errorf("SampleCost = %v, want 25ms", got)
	}
}

func TestRunLifecycle(t *testing.T) {
	t.Parallel()
	h := open(t, newH100(1), Options{})
	run := h.run()
	h.tick <- time.Time{} // round 0 is done once Run takes a tick
	again := make(chan error, 1)
	go func() { again <- h.s.Run(context.Background()) }()
	if err := within(t, again); err == nil {
		t.Errorf("a second Run did not fail")
	}
	if err := run.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := len(h.srv.ShutdownCalls()); n != 1 {
		t.Errorf("Shutdown called %d times, want 1", n)
	}
	if err := h.s.Close(); err != nil || len(h.srv.ShutdownCalls()) != 1 {
		t.Errorf("Close after Run: %v, %d shutdowns", err, len(h.srv.ShutdownCalls()))
	}
	if rs := h.s.SampleOnce(context.Background()); rs != nil {
		t.Errorf("SampleOnce after Close = %+v, want nil", rs)
	}
	if n := len(dev(h.srv, 0).GetUtilizationRatesCalls()); n != 2 {
		t.Errorf("%d rounds, want 2 (Run finishes the round it is in)", n)
	}
}

func TestCloseReportsShutdownError(t *testing.T) {
	t.Parallel()
	srv := newH100(1)
	srv.ShutdownFunc = func() nvml.Return { return nvml.ERROR_UNKNOWN }
	h := open(t, srv, Options{})
	if err := h.s.Close(); !errors.Is(err, nvml.ERROR_UNKNOWN) {
		t.Errorf("Close = %v, want ERROR_UNKNOWN wrapped", err)
	}
}

func TestOpenSkipsGPUWithoutHandle(t *testing.T) {
	t.Parallel()
	srv := newH100(3)
	srv.DeviceGetHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		if i == 1 {
			return nil, nvml.ERROR_GPU_IS_LOST
		}
		return srv.Devices[i], nvml.SUCCESS
	}
	h := open(t, srv, Options{})
	devs := h.s.Info().Devices
	if len(devs) != 2 || devs[0].Index != 0 || devs[1].Index != 2 {
		t.Fatalf("devices = %+v, want GPUs 0 and 2", devs)
	}
	if n := h.logs.count("level=WARN", "gpu=1"); n != 1 {
		t.Errorf("the missing GPU was logged %d times, want once:\n%s", n, h.logs)
	}
	if rs := h.s.SampleOnce(context.Background()); len(rs) != 2 || rs[1].Index != 2 || rs[1].UUID != uuidOf(2) {
		t.Errorf("readings = %+v", rs)
	}
}

// TestCloseDoesNotWaitForAStuckCall: Close returns while a round is inside
// NVML, and NVML is shut down only once that call has returned.
func TestCloseDoesNotWaitForAStuckCall(t *testing.T) {
	t.Parallel()
	srv := newH100(1)
	entered, release, shut := make(chan struct{}), make(chan struct{}), make(chan struct{})
	dev(srv, 0).GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		entered <- struct{}{}
		<-release
		return nvml.Utilization{}, nvml.SUCCESS
	}
	srv.ShutdownFunc = func() nvml.Return {
		close(shut)
		return nvml.SUCCESS
	}
	h := open(t, srv, Options{})
	done := make(chan []Reading, 1)
	go func() { done <- h.s.SampleOnce(context.Background()) }()
	within(t, entered)

	closed := make(chan error, 1)
	go func() { closed <- h.s.Close() }()
	if err := within(t, closed); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-shut:
		t.Fatal("NVML shut down while a call was in flight")
	default:
	}
	close(release)
	within(t, done)
	within(t, shut)
	if n := len(srv.ShutdownCalls()); n != 1 {
		t.Errorf("Shutdown called %d times, want 1", n)
	}
	if rs := h.s.SampleOnce(context.Background()); rs != nil {
		t.Errorf("SampleOnce after Close = %+v", rs)
	}
}
