package gpu

import (
	"reflect"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

func TestCriticalXID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code uint64
		want bool
	}{
		// The ones the brief names, all critical.
		{48, true}, {63, true}, {64, true}, {74, true}, {79, true}, {94, true}, {95, true},
		// Others the catalog sends to a reset or reboot.
		{46, true}, {62, true}, {119, true}, {120, true}, {136, true}, {140, true}, {143, true}, {144, true},
		{150, true}, {151, true}, {155, true}, {156, true}, {158, true}, {160, true},
		// Application errors and noise.
		{0, false}, {8, false}, {13, false}, {31, false}, {43, false}, {45, false}, {92, false}, {121, false},
		{154, false}, {999, false},
	} {
		if got := CriticalXID(tc.code); got != tc.want {
			t.Errorf("CriticalXID(%d) = %v, want %v", tc.code, got, tc.want)
		}
	}
}

func TestClockEventNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mask uint64
		want []string
	}{
		{0, nil},
		{0x1, []string{"gpu_idle"}},
		{0x4 | 0x40, []string{"sw_power_cap", "hw_thermal_slowdown"}},
		{0x2 | 0x8 | 0x10 | 0x20 | 0x80 | 0x100, []string{"applications_clocks_setting", "hw_slowdown", "sync_boost",
			"sw_thermal_slowdown", "hw_power_brake_slowdown", "display_clock_setting"}},
		{0x200 | 0x400, []string{"board_limit", "reliability"}},
		{0x800, []string{"unknown_0x800"}},
	} {
		if got := ClockEventNames(tc.mask); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ClockEventNames(%#x) = %q, want %q", tc.mask, got, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	healthy := func() Reading {
		return Reading{
			Index: 2, UUID: "GPU-2",
			ECCVolatileUncorrected: ptr[uint64](0), ECCAggregateUncorrected: ptr[uint64](1),
			RemapPending: ptr(false), RemapFailed: ptr(false), RemappedUncorrectable: ptr[uint32](1),
			ClockEventReasons: ptr[uint64](nvml.ClocksEventReasonSwPowerCap | nvml.ClocksEventReasonGpuIdle),
			XIDErrors:         13,
		}
	}
	for _, tc := range []struct {
		name   string
		change func(r *Reading)
		want   []Problem
	}{
		{"healthy (old DBE remapped, app XID, power cap)", func(*Reading) {}, nil},
		{"nothing known", func(r *Reading) { *r = Reading{Index: 2, UUID: "GPU-2"} }, nil},
		{"uncorrectable ECC since driver load", func(r *Reading) { r.ECCVolatileUncorrected = ptr[uint64](2) },
			[]Problem{{2, "GPU-2", "ecc_uncorrectable", "2 uncorrectable ECC errors since the driver was loaded", true}}},
		{"row remap pending", func(r *Reading) { r.RemapPending = ptr(true) },
			[]Problem{{2, "GPU-2", "row_remap_pending", "a memory row waits for remapping, which takes a GPU reset", true}}},
		{"row remap failed", func(r *Reading) { r.RemapFailed = ptr(true) },
			[]Problem{{2, "GPU-2", "row_remap_failure", "remapping a memory row failed", true}}},
		{"critical last XID", func(r *Reading) { r.XIDErrors = 95 },
			[]Problem{{2, "GPU-2", "xid", "XID 95: uncontained uncorrectable ECC error", true}}},
		{"GPU lost", func(r *Reading) { r.Lost = true },
			[]Problem{{2, "GPU-2", "gpu_lost", "NVML says the GPU is lost (fallen off the bus?)", true}}},
		{"thermal slowdown", func(r *Reading) {
			r.ClockEventReasons = ptr[uint64](nvml.ClocksThrottleReasonHwThermalSlowdown | nvml.ClocksEventReasonSwThermalSlowdown | nvml.ClocksEventReasonSwPowerCap)
		}, []Problem{{2, "GPU-2", "clock_slowdown", "clocks slowed down: sw_thermal_slowdown, hw_thermal_slowdown", false}}},
		{"several at once", func(r *Reading) { r.RemapPending = ptr(true); r.ECCVolatileUncorrected = ptr[uint64](1) },
			[]Problem{
				{2, "GPU-2", "ecc_uncorrectable", "1 uncorrectable ECC errors since the driver was loaded", true},
				{2, "GPU-2", "row_remap_pending", "a memory row waits for remapping, which takes a GPU reset", true},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := healthy()
			tc.change(&r)
			if got := Check(r); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Check = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestCheckEvent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		e    Event
		want *Problem
	}{
		{"critical XID", Event{Index: 1, UUID: "GPU-1", Kind: "xid", XID: 79, Critical: true, Detail: "XID 79: GPU has fallen off the bus"},
			&Problem{1, "GPU-1", "xid", "XID 79: GPU has fallen off the bus", true}},
		{"application XID", Event{Index: 1, UUID: "GPU-1", Kind: "xid", XID: 13},
			&Problem{1, "GPU-1", "xid", "XID 13: graphics engine exception", false}},
		{"row remap XID", Event{Index: 0, UUID: "GPU-0", Kind: "xid", XID: 63},
			&Problem{0, "GPU-0", "xid", "XID 63: row remapping (page retirement) recorded; a GPU reset activates it", true}},
		{"uncorrectable ECC", Event{Index: 0, UUID: "GPU-0", Kind: "ecc_uncorrectable", Critical: true, Detail: "d"},
			&Problem{0, "GPU-0", "ecc_uncorrectable", "d", true}},
		{"corrected ECC", Event{Index: 0, Kind: "ecc_corrected"}, nil},
		{"other", Event{Index: -1, Kind: "event_0x4"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CheckEvent(tc.e); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("CheckEvent = %+v, want %+v", got, tc.want)
			}
		})
	}
}
