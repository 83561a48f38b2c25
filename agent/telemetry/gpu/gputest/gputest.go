// Package gputest is an NVIDIA H100 server for tests, on go-nvml's own mock
// package: its DGX H100 model gives the devices, and this package makes each
// answer every query the gpu package makes, like a busy H100 SXM5 80GB.
// Tests change one device's answers through its *server.Device fields.
package gputest

import (
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// The H100 the mock answers like: go-nvml's DGX H100 server model gives the
// devices (name, memory, PCI device id, driver 550.54.15, CUDA 12.4); it
// answers none of the telemetry queries, so setH100 adds them.
const (
	mib = 1 << 20
	gib = 1 << 30

	// H100Total is the memory of each mock GPU (gpus.H100_SXM5_80GB.MemoryMB).
	H100Total = 81920 * mib
	// H100Reserved is the memory the driver reserves on each mock GPU.
	H100Reserved = 512 * mib
	// H100Used is the memory in use on each mock GPU.
	H100Used = 70 * gib
)

// NewH100 returns a DGX H100 model cut down to n GPUs, each answering every
// query the Sampler makes. Events are unsupported unless a test says otherwise.
func NewH100(n int) *server.Server {
	srv := dgxh100.New()
	srv.Devices = srv.Devices[:n]
	for i := range srv.Devices {
		SetH100(Dev(srv, i), i)
	}
	srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return nil, nvml.ERROR_NOT_SUPPORTED }
	return srv
}

// Dev is device i of srv, to change its answers.
func Dev(srv *server.Server, i int) *server.Device { return srv.Devices[i].(*server.Device) }

// UUID is the UUID of mock GPU i.
func UUID(i int) string { return fmt.Sprintf("GPU-00000000-0000-0000-0000-%012d", i) }

// BusID is the PCI bus id of mock GPU i.
func BusID(i int) string { return fmt.Sprintf("00000000:%02X:00.0", 0x18+0x10*i) }

// SetH100 makes device i answer like a busy H100 SXM5 80GB; values differ by i
// where that helps tell the GPUs apart.
func SetH100(d *server.Device, i int) {
	d.UUID = UUID(i)
	d.PciBusID = BusID(i)
	d.GetPciInfoFunc = func() (nvml.PciInfo, nvml.Return) {
		p := nvml.PciInfo{PciDeviceId: d.Config.PciDeviceId}
		for j, c := range d.PciBusID {
			p.BusId[j] = int8(c)
		}
		return p, nvml.SUCCESS
	}
	d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
		return nvml.Memory{Total: H100Total, Used: H100Used + H100Reserved, Free: H100Total - H100Used - H100Reserved}, nvml.SUCCESS
	}
	d.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
		return nvml.Memory_v2{Total: H100Total, Reserved: H100Reserved, Used: H100Used, Free: H100Total - H100Used - H100Reserved}, nvml.SUCCESS
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
		return []nvml.ProcessInfo{{Pid: uint32(4242 + i), UsedGpuMemory: H100Used}}, nvml.SUCCESS
	}
	d.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) {
		return nvml.EventTypeXidCriticalError | nvml.EventTypeDoubleBitEccError | nvml.EventTypeSingleBitEccError |
			nvml.EventTypePState | nvml.EventTypeClock, nvml.SUCCESS
	}
	d.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }
}
