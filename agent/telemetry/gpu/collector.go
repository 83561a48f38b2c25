package gpu

import (
	"math"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Where the metric names come from, so that dashboards built for NVIDIA's
// dcgm-exporter work on baton's endpoint:
//
//   - Names, types and help strings: dcgm-exporter's etc/default-counters.csv
//     (https://github.com/NVIDIA/dcgm-exporter/blob/main/etc/default-counters.csv),
//     including the ECC lines it ships commented out. Its units are kept:
//     framebuffer in MiB, energy in mJ, PCIe throughput in KB (NVML's KB/s,
//     which the CSV declares a counter; kept as is).
//   - Series dcgm-exporter can export but default-counters.csv does not list
//     (DCGM_FI_DEV_FB_RESERVED, DCGM_FI_DEV_ENFORCED_POWER_LIMIT,
//     DCGM_FI_DEV_CLOCKS_EVENT_REASONS, DCGM_FI_DEV_ROW_REMAP_PENDING,
//     DCGM_FI_DEV_ECC_DBE_AGG_TOTAL): DCGM's field names, as go-dcgm declares
//     them (pkg/dcgm/const_fields.go), with help strings in the CSV's style.
//     DCGM_FI_DEV_CLOCKS_EVENT_REASONS is the name DCGM 3.3 gave field 112;
//     DCGM_FI_DEV_CLOCK_THROTTLE_REASONS is its deprecated alias.
//   - Labels gpu, UUID, pci_bus_id, device ("nvidia" and the minor number),
//     modelName and Hostname: dcgm-exporter's GPU template,
//     internal/pkg/rendermetrics/render_metrics.go.

const mib = 1 << 20

// metric is one series family: its description, and how a reading gives its
// value (false: the reading has none).
type metric struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(r *Reading) (float64, bool)
}

// collector exports the Sampler's newest readings. It never calls NVML.
type collector struct {
	s       *Sampler
	host    string
	metrics []metric
}

// Collector returns a Prometheus collector that exports the newest readings
// (Latest; a scrape never calls NVML) under dcgm-exporter's metric names and
// labels; hostname fills the Hostname label. GPUs whose query is unsupported
// have no series for it.
func (s *Sampler) Collector(hostname string) prometheus.Collector {
	return &collector{s: s, host: hostname, metrics: metrics()}
}

// metrics returns the series the collector exports; see the sources above.
func metrics() []metric {
	labelNames := []string{"gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname"}
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	m := func(name, help string, typ prometheus.ValueType, value func(*Reading) (float64, bool)) metric {
		return metric{desc: prometheus.NewDesc(name, help, labelNames, nil), typ: typ, value: value}
	}
	return []metric{
		m("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).", gauge, u32(func(r *Reading) *uint32 { return r.SMClockMHz })),
		m("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz).", gauge, u32(func(r *Reading) *uint32 { return r.MemClockMHz })),
		m("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", gauge, u32(func(r *Reading) *uint32 { return r.TempC })),
		m("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", gauge, f64(func(r *Reading) *float64 { return r.PowerW })),
		m("DCGM_FI_DEV_ENFORCED_POWER_LIMIT", "Effective power limit that the driver enforces after taking into account all limiters (in W).", gauge,
			f64(func(r *Reading) *float64 { return r.PowerLimitW })),
		m("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "Total energy consumption since boot (in mJ).", counter, func(r *Reading) (float64, bool) {
			if r.EnergyJ == nil {
				return 0, false
			}
			return math.Round(*r.EnergyJ * 1000), true
		}),
		m("DCGM_FI_DEV_PCIE_TX_THROUGHPUT", "Total number of bytes transmitted through PCIe TX (in KB) via NVML.", counter,
			scaled(func(r *Reading) *uint64 { return r.PCIeTxBytesPerSec }, 1024)),
		m("DCGM_FI_DEV_PCIE_RX_THROUGHPUT", "Total number of bytes received through PCIe RX (in KB) via NVML.", counter,
			scaled(func(r *Reading) *uint64 { return r.PCIeRxBytesPerSec }, 1024)),
		m("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "Total number of PCIe retries.", counter, u32(func(r *Reading) *uint32 { return r.PCIeReplays })),
		m("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", gauge, u32(func(r *Reading) *uint32 { return r.UtilGPU })),
		m("DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %).", gauge, u32(func(r *Reading) *uint32 { return r.UtilMemory })),
		m("DCGM_FI_DEV_XID_ERRORS", "Value of the last XID error encountered.", gauge, func(r *Reading) (float64, bool) {
			return float64(r.XIDErrors), true
		}),
		m("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "Current clock event reasons (bitmask of DCGM_CLOCKS_EVENT_REASON_*).", gauge,
			scaled(func(r *Reading) *uint64 { return r.ClockEventReasons }, 1)),
		m("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", gauge, scaled(func(r *Reading) *uint64 { return r.MemFree }, mib)),
		m("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", gauge, scaled(func(r *Reading) *uint64 { return r.MemUsed }, mib)),
		m("DCGM_FI_DEV_FB_RESERVED", "Framebuffer memory reserved (in MiB).", gauge, scaled(func(r *Reading) *uint64 { return r.MemReserved }, mib)),
		m("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "Total number of single-bit volatile ECC errors.", counter,
			scaled(func(r *Reading) *uint64 { return r.ECCVolatileCorrected }, 1)),
		m("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "Total number of double-bit volatile ECC errors.", counter,
			scaled(func(r *Reading) *uint64 { return r.ECCVolatileUncorrected }, 1)),
		m("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", "Total number of double-bit persistent ECC errors.", counter,
			scaled(func(r *Reading) *uint64 { return r.ECCAggregateUncorrected }, 1)),
		m("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "Number of remapped rows for uncorrectable errors", counter,
			u32(func(r *Reading) *uint32 { return r.RemappedUncorrectable })),
		m("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "Number of remapped rows for correctable errors", counter,
			u32(func(r *Reading) *uint32 { return r.RemappedCorrectable })),
		m("DCGM_FI_DEV_ROW_REMAP_FAILURE", "Whether remapping of rows has failed", gauge, flag(func(r *Reading) *bool { return r.RemapFailed })),
		m("DCGM_FI_DEV_ROW_REMAP_PENDING", "Whether remapping of rows is pending", gauge, flag(func(r *Reading) *bool { return r.RemapPending })),
	}
}

func u32(f func(*Reading) *uint32) func(*Reading) (float64, bool) {
	return func(r *Reading) (float64, bool) {
		if p := f(r); p != nil {
			return float64(*p), true
		}
		return 0, false
	}
}

func f64(f func(*Reading) *float64) func(*Reading) (float64, bool) {
	return func(r *Reading) (float64, bool) {
		if p := f(r); p != nil {
			return *p, true
		}
		return 0, false
	}
}

// scaled divides by unit with integer division, as DCGM reports whole MiB and KB.
func scaled(f func(*Reading) *uint64, unit uint64) func(*Reading) (float64, bool) {
	return func(r *Reading) (float64, bool) {
		if p := f(r); p != nil {
			return float64(*p / unit), true
		}
		return 0, false
	}
}

func flag(f func(*Reading) *bool) func(*Reading) (float64, bool) {
	return func(r *Reading) (float64, bool) {
		p := f(r)
		switch {
		case p == nil:
			return 0, false
		case *p:
			return 1, true
		}
		return 0, true
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	minor := make(map[int]int, len(c.s.devs))
	for _, d := range c.s.devs {
		minor[d.info.Index] = d.info.Minor
	}
	for _, r := range c.s.Latest() {
		n, ok := minor[r.Index]
		if !ok || n < 0 {
			n = r.Index
		}
		labels := []string{strconv.Itoa(r.Index), r.UUID, r.PCIBusID, "nvidia" + strconv.Itoa(n), r.Name, c.host}
		for _, m := range c.metrics {
			if v, ok := m.value(&r); ok {
				ch <- prometheus.MustNewConstMetric(m.desc, m.typ, v, labels...)
			}
		}
	}
}
