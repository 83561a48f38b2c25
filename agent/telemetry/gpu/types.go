package gpu

import (
	"log/slog"
	"slices"
	"time"
)

// Reading is one sample of one GPU. A query the driver does not support (or
// that failed this round) leaves its field nil, and nil fields are omitted in
// JSON. A Reading returned by the Sampler is a copy the caller owns.
type Reading struct {
	Time     time.Time `json:"time"`
	Index    int       `json:"gpu"`
	UUID     string    `json:"uuid"`
	Name     string    `json:"name"`
	PCIBusID string    `json:"pci_bus_id"`

	UtilGPU    *uint32 `json:"util_gpu_pct,omitempty"`    // percent of time a kernel ran
	UtilMemory *uint32 `json:"util_memory_pct,omitempty"` // percent of time memory was read or written

	MemUsed     *uint64 `json:"mem_used_bytes,omitempty"`
	MemFree     *uint64 `json:"mem_free_bytes,omitempty"`
	MemReserved *uint64 `json:"mem_reserved_bytes,omitempty"` // nil when only the v1 memory query works
	MemTotal    *uint64 `json:"mem_total_bytes,omitempty"`

	TempC       *uint32  `json:"temp_c,omitempty"`
	PowerW      *float64 `json:"power_w,omitempty"`
	PowerLimitW *float64 `json:"power_limit_w,omitempty"` // the enforced limit
	EnergyJ     *float64 `json:"energy_j,omitempty"`      // total energy since the driver was loaded

	SMClockMHz  *uint32 `json:"sm_clock_mhz,omitempty"`
	MemClockMHz *uint32 `json:"mem_clock_mhz,omitempty"`

	ClockEventReasons *uint64  `json:"clock_event_reasons,omitempty"` // NVML's clocks event reasons bitmask
	ClockEvents       []string `json:"clock_events,omitempty"`        // decoded names, e.g. "sw_power_cap", "hw_thermal_slowdown"

	// The slow queries, sampled every Options.SlowEvery rounds; the rounds in
	// between carry the last values forward, and SlowTime says when they were taken.
	PCIeTxBytesPerSec *uint64   `json:"pcie_tx_bytes_per_sec,omitempty"`
	PCIeRxBytesPerSec *uint64   `json:"pcie_rx_bytes_per_sec,omitempty"`
	PCIeReplays       *uint32   `json:"pcie_replays,omitempty"`
	SlowTime          time.Time `json:"slow_time,omitzero"`

	ECCVolatileCorrected    *uint64 `json:"ecc_volatile_corrected,omitempty"`
	ECCVolatileUncorrected  *uint64 `json:"ecc_volatile_uncorrected,omitempty"`
	ECCAggregateUncorrected *uint64 `json:"ecc_aggregate_uncorrected,omitempty"`

	RemappedCorrectable   *uint32 `json:"remapped_rows_correctable,omitempty"`
	RemappedUncorrectable *uint32 `json:"remapped_rows_uncorrectable,omitempty"`
	RemapPending          *bool   `json:"row_remap_pending,omitempty"`
	RemapFailed           *bool   `json:"row_remap_failed,omitempty"`

	Processes []Process `json:"processes,omitempty"` // compute processes using the GPU

	// XIDErrors is the last XID seen on this GPU through the event watcher (0 =
	// none), like DCGM_FI_DEV_XID_ERRORS.
	XIDErrors uint64 `json:"xid_errors"`

	// Lost is set when a query of this round returned ERROR_GPU_IS_LOST.
	Lost bool `json:"lost,omitempty"`
	// Errors lists the queries of this round that failed for another reason
	// than "not supported", as "query: error".
	Errors []string `json:"errors,omitempty"`
}

// Process is one compute process on a GPU. PID is in the host's PID namespace,
// which in a container is usually not the container's.
type Process struct {
	PID        uint32  `json:"pid"`
	UsedMemory *uint64 `json:"used_memory_bytes,omitempty"` // nil when the driver does not say
}

// Event is one event from the driver: an XID or an ECC error.
type Event struct {
	Time     time.Time `json:"time"`
	Index    int       `json:"gpu"` // -1 when the event names no GPU the Sampler knows
	UUID     string    `json:"uuid"`
	Kind     string    `json:"kind"` // "xid", "ecc_uncorrectable", "ecc_corrected", or "event_0x…" for others
	XID      uint64    `json:"xid,omitempty"`
	Critical bool      `json:"critical"` // see CriticalXID; uncorrectable ECC is critical
	Detail   string    `json:"detail"`
}

// Device describes one GPU as discovered by Open.
type Device struct {
	Index    int    `json:"gpu"`
	UUID     string `json:"uuid"`
	Name     string `json:"name"`
	PCIBusID string `json:"pci_bus_id"`
	MemTotal uint64 `json:"mem_total_bytes"`
	Minor    int    `json:"minor"` // the N of /dev/nvidiaN; -1 when unknown
}

// Info is what Open learned about the driver and its GPUs.
type Info struct {
	Driver  string   `json:"driver"` // e.g. "580.82.07"
	CUDA    string   `json:"cuda"`   // the CUDA version the driver supports, e.g. "13.0"
	NVML    string   `json:"nvml"`
	Devices []Device `json:"devices"`
}

// Options tunes a Sampler. The zero value is usable.
type Options struct {
	// Interval between two rounds of Run; default 1s.
	Interval time.Duration
	// SlowEvery runs the slow queries (PCIe throughput, ~20 ms per direction,
	// and the PCIe replay counter) every N rounds of Run; default 10.
	SlowEvery int
	// EventBuffer is the capacity of the Events channel; default 64.
	EventBuffer int
	// Clock stamps readings and events and times rounds; default time.Now.
	Clock func() time.Time
	// Logger receives what the Sampler has to say; default slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.SlowEvery <= 0 {
		o.SlowEvery = 10
	}
	if o.EventBuffer <= 0 {
		o.EventBuffer = 64
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// clone returns a deep copy of r, so that what one caller holds can never be
// changed by another.
func (r Reading) clone() Reading {
	c := r
	c.UtilGPU = clonePtr(r.UtilGPU)
	c.UtilMemory = clonePtr(r.UtilMemory)
	c.MemUsed = clonePtr(r.MemUsed)
	c.MemFree = clonePtr(r.MemFree)
	c.MemReserved = clonePtr(r.MemReserved)
	c.MemTotal = clonePtr(r.MemTotal)
	c.TempC = clonePtr(r.TempC)
	c.PowerW = clonePtr(r.PowerW)
	c.PowerLimitW = clonePtr(r.PowerLimitW)
	c.EnergyJ = clonePtr(r.EnergyJ)
	c.SMClockMHz = clonePtr(r.SMClockMHz)
	c.MemClockMHz = clonePtr(r.MemClockMHz)
	c.ClockEventReasons = clonePtr(r.ClockEventReasons)
	c.ClockEvents = slices.Clone(r.ClockEvents)
	c.PCIeTxBytesPerSec = clonePtr(r.PCIeTxBytesPerSec)
	c.PCIeRxBytesPerSec = clonePtr(r.PCIeRxBytesPerSec)
	c.PCIeReplays = clonePtr(r.PCIeReplays)
	c.ECCVolatileCorrected = clonePtr(r.ECCVolatileCorrected)
	c.ECCVolatileUncorrected = clonePtr(r.ECCVolatileUncorrected)
	c.ECCAggregateUncorrected = clonePtr(r.ECCAggregateUncorrected)
	c.RemappedCorrectable = clonePtr(r.RemappedCorrectable)
	c.RemappedUncorrectable = clonePtr(r.RemappedUncorrectable)
	c.RemapPending = clonePtr(r.RemapPending)
	c.RemapFailed = clonePtr(r.RemapFailed)
	if r.Processes != nil {
		c.Processes = make([]Process, len(r.Processes))
		for i, p := range r.Processes {
			c.Processes[i] = Process{PID: p.PID, UsedMemory: clonePtr(p.UsedMemory)}
		}
	}
	c.Errors = slices.Clone(r.Errors)
	return c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func ptr[T any](v T) *T { return &v }
