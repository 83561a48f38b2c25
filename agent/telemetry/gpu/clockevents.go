package gpu

import (
	"fmt"
	"math/bits"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// ClockEventNames decodes NVML's clocks event reasons bitmask
// (nvmlClocksEventReason*, formerly nvmlClocksThrottleReason*) into names such
// as "sw_power_cap" and "hw_thermal_slowdown", lowest bit first. Bits NVML does
// not define come out as "unknown_0x…".
func ClockEventNames(mask uint64) []string {
	var names []string
	for m := mask; m != 0; m &= m - 1 {
		bit := uint64(1) << bits.TrailingZeros64(m)
		names = append(names, clockEventName(bit))
	}
	return names
}

func clockEventName(bit uint64) string {
	switch bit {
	case nvml.ClocksEventReasonGpuIdle:
		return "gpu_idle"
	case nvml.ClocksEventReasonApplicationsClocksSetting:
		return "applications_clocks_setting"
	case nvml.ClocksEventReasonSwPowerCap:
		return "sw_power_cap"
	case nvml.ClocksThrottleReasonHwSlowdown:
		return "hw_slowdown"
	case nvml.ClocksEventReasonSyncBoost:
		return "sync_boost"
	case nvml.ClocksEventReasonSwThermalSlowdown:
		return "sw_thermal_slowdown"
	case nvml.ClocksThrottleReasonHwThermalSlowdown:
		return "hw_thermal_slowdown"
	case nvml.ClocksThrottleReasonHwPowerBrakeSlowdown:
		return "hw_power_brake_slowdown"
	case nvml.ClocksEventReasonDisplayClockSetting:
		return "display_clock_setting"
	case nvml.ClocksEventReasonBoardLimit:
		return "board_limit"
	case nvml.ClocksEventReasonReliability:
		return "reliability"
	}
	return fmt.Sprintf("unknown_%#x", bit)
}
