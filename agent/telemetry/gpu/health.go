package gpu

import (
	"fmt"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Problem is something wrong with a GPU. Fatal means the host should be given
// up: commit the checkpoint and leave, for the GPU needs a reset, a reboot or a
// technician.
type Problem struct {
	Index  int    `json:"gpu"`
	UUID   string `json:"uuid"`
	Kind   string `json:"kind"` // "gpu_lost", "ecc_uncorrectable", "row_remap_pending", "row_remap_failure", "xid", "clock_slowdown"
	Detail string `json:"detail"`
	Fatal  bool   `json:"fatal"`
}

// CriticalXID reports whether an XID means the GPU cannot be trusted until it
// is reset or the machine rebooted, so that a training run should leave the host.
//
// The list follows NVIDIA's Xid catalog for Ampere and newer GPUs, "Analyzing
// Xid Errors with the Xid Catalog",
// https://docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html, column
// "Resolution Bucket (Immediate Action)" (as NVIDIA mirrors it in
// github.com/NVIDIA/NVSentinel, distros/kubernetes/nvsentinel/charts/gpu-health-monitor/xiderrorsmapping.csv):
//
//   - RESET_GPU: 46, 62, 64, 95, 109, 110, 119, 120, 136, 140, 143, 155, 156, 158, 162
//   - RESTART_BM (reboot the machine): 79, 160
//   - RESTART_VM: 151
//   - a workflow that ends in a reset: 48 (double-bit ECC, WORKFLOW_XID_48),
//     74 (NVLink, WORKFLOW_NVLINK_ERR), 144–150 (NVLink5, WORKFLOW_NVLINK5_ERR)
//
// and baton adds two the catalog files under milder buckets, because a
// training run that meets them is better off on another host:
//
//   - 63 (catalog: IGNORE): a row was marked for remapping (a page retired on
//     older GPUs) and waits for a GPU reset to take effect;
//   - 94 (catalog: RESTART_APP): a contained uncorrectable ECC error; the
//     application it hit, the trainer, was killed, and the row waits for remapping.
//
// Everything else (13, 31, 43, 45 and the other RESTART_APP or IGNORE codes)
// is left to the trainer's own error handling.
func CriticalXID(code uint64) bool {
	switch code {
	case 46, 62, 64, 95, 109, 110, 119, 120, 136, 140, 143, 155, 156, 158, 162, // RESET_GPU
		79, 160, // RESTART_BM
		151,                                       // RESTART_VM
		48, 74, 144, 145, 146, 147, 148, 149, 150, // workflows that end in a reset
		63, 94: // baton's additions
		return true
	}
	return false
}

// xidName returns a short description of the XIDs a training run is likely to
// meet, or "".
func xidName(code uint64) string {
	switch code {
	case 13:
		return "graphics engine exception"
	case 31:
		return "GPU memory page fault"
	case 43:
		return "GPU stopped processing"
	case 45:
		return "preemptive cleanup after a previous error"
	case 46:
		return "GPU timeout"
	case 48:
		return "double-bit ECC error"
	case 62:
		return "PMU halt error"
	case 63:
		return "row remapping (page retirement) recorded; a GPU reset activates it"
	case 64:
		return "row remapping (page retirement) failed"
	case 74:
		return "NVLink error"
	case 79:
		return "GPU has fallen off the bus"
	case 92:
		return "high single-bit ECC error rate"
	case 94:
		return "contained uncorrectable ECC error"
	case 95:
		return "uncontained uncorrectable ECC error"
	case 109:
		return "context switch timeout"
	case 119:
		return "GSP RPC timeout"
	case 120:
		return "GSP error"
	case 140:
		return "unrecovered ECC error"
	}
	return ""
}

// Check judges one reading: uncorrectable ECC errors since the driver loaded,
// a pending or failed row remap, a lost GPU and a critical last XID are fatal;
// hardware or thermal clock slowdowns are reported but not fatal.
func Check(r Reading) []Problem {
	var ps []Problem
	add := func(kind, detail string, fatal bool) {
		ps = append(ps, Problem{Index: r.Index, UUID: r.UUID, Kind: kind, Detail: detail, Fatal: fatal})
	}
	if r.Lost {
		add("gpu_lost", "NVML says the GPU is lost (fallen off the bus?)", true)
	}
	if r.ECCVolatileUncorrected != nil && *r.ECCVolatileUncorrected > 0 {
		add("ecc_uncorrectable", fmt.Sprintf("%d uncorrectable ECC errors since the driver was loaded", *r.ECCVolatileUncorrected), true)
	}
	if r.RemapPending != nil && *r.RemapPending {
		add("row_remap_pending", "a memory row waits for remapping, which takes a GPU reset", true)
	}
	if r.RemapFailed != nil && *r.RemapFailed {
		add("row_remap_failure", "remapping a memory row failed", true)
	}
	if r.XIDErrors != 0 && CriticalXID(r.XIDErrors) {
		add("xid", xidDetail(r.XIDErrors), true)
	}
	if r.ClockEventReasons != nil {
		const slowdowns = nvml.ClocksThrottleReasonHwSlowdown | nvml.ClocksThrottleReasonHwThermalSlowdown |
			nvml.ClocksThrottleReasonHwPowerBrakeSlowdown | nvml.ClocksEventReasonSwThermalSlowdown
		if m := *r.ClockEventReasons & slowdowns; m != 0 {
			add("clock_slowdown", "clocks slowed down: "+strings.Join(ClockEventNames(m), ", "), false)
		}
	}
	return ps
}

// CheckEvent judges one event: a critical XID or an uncorrectable ECC error is
// fatal, another XID is a problem that is not, and anything else is nil.
func CheckEvent(e Event) *Problem {
	p := &Problem{Index: e.Index, UUID: e.UUID, Kind: e.Kind, Detail: e.Detail}
	switch e.Kind {
	case "xid":
		p.Fatal = CriticalXID(e.XID)
		if p.Detail == "" {
			p.Detail = xidDetail(e.XID)
		}
	case "ecc_uncorrectable":
		p.Fatal = true
	default:
		return nil
	}
	return p
}

func xidDetail(code uint64) string {
	if name := xidName(code); name != "" {
		return fmt.Sprintf("XID %d: %s", code, name)
	}
	return fmt.Sprintf("XID %d", code)
}
