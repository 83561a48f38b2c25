package gpu

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func countSeries(t *testing.T, c prometheus.Collector) int {
	t.Helper()
	return testutil.CollectAndCount(c)
}

// exposition writes what dcgm-exporter would show for the two mock GPUs: one
// family per line of fams, with GPU 1's value left out where it is "".
func exposition(host string, fams [][5]string) string {
	var b strings.Builder
	for _, f := range fams {
		name, typ, help, v0, v1 := f[0], f[1], f[2], f[3], f[4]
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for i, v := range []string{v0, v1} {
			if v == "" {
				continue
			}
			// testutil compares text; the encoder sorts labels by name.
			fmt.Fprintf(&b, "%s{Hostname=%q,UUID=%q,device=%q,gpu=%q,modelName=%q,pci_bus_id=%q} %s\n",
				name, host, uuidOf(i), fmt.Sprintf("nvidia%d", i), fmt.Sprint(i), "NVIDIA H100 80GB HBM3", busOf(i), v)
		}
	}
	return b.String()
}

func TestCollector(t *testing.T) {
	t.Parallel()
	srv := newH100(2)
	dev(srv, 1).GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	h := open(t, srv, Options{})
	c := h.s.Collector("node-7")

	if n := countSeries(t, c); n != 0 {
		t.Errorf("before the first round the collector exports %d series, want none", n)
	}
	h.s.SampleOnce(context.Background())
	h.s.handle(nvml.EventData{Device: srv.Devices[1], EventType: nvml.EventTypeXidCriticalError, EventData: 79})

	want := exposition("node-7", [][5]string{
		{"DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", "1980", "1980"},
		{"DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).", "2619", "2619"},
		{"DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", "50", ""},
		{"DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", "612.345", "612.345"},
		{"DCGM_FI_DEV_ENFORCED_POWER_LIMIT", "gauge", "Effective power limit that the driver enforces after taking into account all limiters (in W).", "700", "700"},
		{"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ).", "123456789", "123456789"},
		{"DCGM_FI_DEV_PCIE_TX_THROUGHPUT", "counter", "Total number of bytes transmitted through PCIe TX (in KB) via NVML.", "1000", "1000"},
		{"DCGM_FI_DEV_PCIE_RX_THROUGHPUT", "counter", "Total number of bytes received through PCIe RX (in KB) via NVML.", "2000", "2000"},
		{"DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries.", "3", "3"},
		{"DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", "90", "91"},
		{"DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).", "40", "41"},
		{"DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered.", "0", "79"},
		{"DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "gauge", "Current clock event reasons (bitmask of DCGM_CLOCKS_EVENT_REASON_*).", "4", "1"},
		{"DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", "9728", "9728"},
		{"DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", "71680", "71680"},
		{"DCGM_FI_DEV_FB_RESERVED", "gauge", "Framebuffer memory reserved (in MiB).", "512", "512"},
		{"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "counter", "Total number of single-bit volatile ECC errors.", "5", "5"},
		{"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter", "Total number of double-bit volatile ECC errors.", "0", "0"},
		{"DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", "counter", "Total number of double-bit persistent ECC errors.", "0", "0"},
		{"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for uncorrectable errors", "0", "0"},
		{"DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for correctable errors", "1", "1"},
		{"DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "Whether remapping of rows has failed", "0", "0"},
		{"DCGM_FI_DEV_ROW_REMAP_PENDING", "gauge", "Whether remapping of rows is pending", "0", "0"},
	})

	calls := len(dev(srv, 0).GetUtilizationRatesCalls())
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Errorf("scrape differs from dcgm-exporter's names, labels or values:\n%v", err)
	}
	if n := len(dev(srv, 0).GetUtilizationRatesCalls()); n != calls {
		t.Errorf("a scrape called NVML (%d rounds, was %d)", n, calls)
	}
	if n := countSeries(t, c); n != 23*2-1 {
		t.Errorf("%d series, want %d", n, 23*2-1)
	}

	// The pedantic registry checks that Collect sends only what Describe declares.
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Errorf("Gather: %v", err)
	}
}

func TestCollectorRemapFlags(t *testing.T) {
	t.Parallel()
	srv := newH100(1)
	dev(srv, 0).GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 0, 2, true, true, nvml.SUCCESS }
	h := open(t, srv, Options{})
	h.s.SampleOnce(context.Background())
	c := h.s.Collector("")
	want := `# HELP DCGM_FI_DEV_ROW_REMAP_FAILURE Whether remapping of rows has failed
# TYPE DCGM_FI_DEV_ROW_REMAP_FAILURE gauge
DCGM_FI_DEV_ROW_REMAP_FAILURE{Hostname="",UUID="` + uuidOf(0) + `",device="nvidia0",gpu="0",modelName="NVIDIA H100 80GB HBM3",pci_bus_id="` + busOf(0) + `"} 1
# HELP DCGM_FI_DEV_ROW_REMAP_PENDING Whether remapping of rows is pending
# TYPE DCGM_FI_DEV_ROW_REMAP_PENDING gauge
DCGM_FI_DEV_ROW_REMAP_PENDING{Hostname="",UUID="` + uuidOf(0) + `",device="nvidia0",gpu="0",modelName="NVIDIA H100 80GB HBM3",pci_bus_id="` + busOf(0) + `"} 1
# HELP DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS Number of remapped rows for uncorrectable errors
# TYPE DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS counter
DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS{Hostname="",UUID="` + uuidOf(0) + `",device="nvidia0",gpu="0",modelName="NVIDIA H100 80GB HBM3",pci_bus_id="` + busOf(0) + `"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"DCGM_FI_DEV_ROW_REMAP_FAILURE", "DCGM_FI_DEV_ROW_REMAP_PENDING", "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"); err != nil {
		t.Error(err)
	}
}
