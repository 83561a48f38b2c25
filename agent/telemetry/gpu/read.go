package gpu

import "github.com/NVIDIA/go-nvml/pkg/nvml"

// Query names, as they appear in logs and in Reading.Errors.
const (
	qUtilization   = "utilization"
	qMemory        = "memory"
	qMemoryV1      = "memory_v1"
	qTemperature   = "temperature"
	qPower         = "power"
	qPowerLimit    = "power_limit"
	qEnergy        = "energy"
	qSMClock       = "sm_clock"
	qMemClock      = "mem_clock"
	qClockEvents   = "clock_events"
	qPCIeTx        = "pcie_tx"
	qPCIeRx        = "pcie_rx"
	qPCIeReplays   = "pcie_replays"
	qECCVolCorr    = "ecc_volatile_corrected"
	qECCVolUncorr  = "ecc_volatile_uncorrected"
	qECCAggUncorr  = "ecc_aggregate_uncorrected"
	qRemappedRows  = "remapped_rows"
	qProcesses     = "processes"
	notAvailable64 = ^uint64(0) // NVML_VALUE_NOT_AVAILABLE for unsigned long long
)

// read queries one GPU. Each query that fails leaves its field nil; see check.
func (s *Sampler) read(d *device, slow bool) Reading {
	r := Reading{
		Time:     s.opts.Clock(),
		Index:    d.info.Index,
		UUID:     d.info.UUID,
		Name:     d.info.Name,
		PCIBusID: d.info.PCIBusID,
	}
	h := d.h

	if u, ret := h.GetUtilizationRates(); s.check(&r, qUtilization, ret) {
		r.UtilGPU, r.UtilMemory = ptr(u.Gpu), ptr(u.Memory)
	}

	// The v2 query splits the memory the driver reserves off "used"; drivers
	// without it (before R510) answer the v1 query.
	if m, ret := h.GetMemoryInfo_v2(); ret == nvml.SUCCESS {
		r.MemUsed, r.MemFree, r.MemReserved, r.MemTotal = ptr(m.Used), ptr(m.Free), ptr(m.Reserved), ptr(m.Total)
	} else if unsupported(ret) {
		if s.first(r.Index, qMemory, ret) {
			s.log.Info("gpu: the v2 memory query is not supported; using v1, without reserved memory", "gpu", r.Index, "query", qMemory, "err", ret.Error())
		}
		if m, ret := h.GetMemoryInfo(); s.check(&r, qMemoryV1, ret) {
			r.MemUsed, r.MemFree, r.MemTotal = ptr(m.Used), ptr(m.Free), ptr(m.Total)
		}
	} else {
		s.check(&r, qMemory, ret)
	}

	if t, ret := h.GetTemperature(nvml.TEMPERATURE_GPU); s.check(&r, qTemperature, ret) {
		r.TempC = ptr(t)
	}
	if mw, ret := h.GetPowerUsage(); s.check(&r, qPower, ret) {
		r.PowerW = ptr(float64(mw) / 1000)
	}
	if mw, ret := h.GetEnforcedPowerLimit(); s.check(&r, qPowerLimit, ret) {
		r.PowerLimitW = ptr(float64(mw) / 1000)
	}
	if mj, ret := h.GetTotalEnergyConsumption(); s.check(&r, qEnergy, ret) {
		r.EnergyJ = ptr(float64(mj) / 1000)
	}
	if c, ret := h.GetClockInfo(nvml.CLOCK_SM); s.check(&r, qSMClock, ret) {
		r.SMClockMHz = ptr(c)
	}
	if c, ret := h.GetClockInfo(nvml.CLOCK_MEM); s.check(&r, qMemClock, ret) {
		r.MemClockMHz = ptr(c)
	}

	// GetCurrentClocksEventReasons replaced GetCurrentClocksThrottleReasons
	// (deprecated in NVML 12.2); older drivers have only the latter.
	reasons, ret := h.GetCurrentClocksEventReasons()
	if ret == nvml.ERROR_FUNCTION_NOT_FOUND {
		reasons, ret = h.GetCurrentClocksThrottleReasons()
	}
	if s.check(&r, qClockEvents, ret) {
		r.ClockEventReasons = ptr(reasons)
		r.ClockEvents = ClockEventNames(reasons)
	}

	if slow {
		d.slowTx, d.slowRx, d.slowReplays = nil, nil, nil
		if kb, ret := h.GetPcieThroughput(nvml.PCIE_UTIL_TX_BYTES); s.check(&r, qPCIeTx, ret) {
			d.slowTx = ptr(uint64(kb) * 1024) // NVML answers in KB/s
		}
		if kb, ret := h.GetPcieThroughput(nvml.PCIE_UTIL_RX_BYTES); s.check(&r, qPCIeRx, ret) {
			d.slowRx = ptr(uint64(kb) * 1024)
		}
		if n, ret := h.GetPcieReplayCounter(); s.check(&r, qPCIeReplays, ret) {
			d.slowReplays = ptr(uint32(n))
		}
		d.slowTime = r.Time
	}
	r.PCIeTxBytesPerSec, r.PCIeRxBytesPerSec, r.PCIeReplays = clonePtr(d.slowTx), clonePtr(d.slowRx), clonePtr(d.slowReplays)
	r.SlowTime = d.slowTime

	if n, ret := h.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.VOLATILE_ECC); s.check(&r, qECCVolCorr, ret) {
		r.ECCVolatileCorrected = ptr(n)
	}
	if n, ret := h.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC); s.check(&r, qECCVolUncorr, ret) {
		r.ECCVolatileUncorrected = ptr(n)
	}
	if n, ret := h.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.AGGREGATE_ECC); s.check(&r, qECCAggUncorr, ret) {
		r.ECCAggregateUncorrected = ptr(n)
	}

	if corr, unc, pending, failed, ret := h.GetRemappedRows(); s.check(&r, qRemappedRows, ret) {
		r.RemappedCorrectable, r.RemappedUncorrectable = ptr(uint32(corr)), ptr(uint32(unc))
		r.RemapPending, r.RemapFailed = ptr(pending), ptr(failed)
	}

	if ps, ret := h.GetComputeRunningProcesses(); s.check(&r, qProcesses, ret) {
		r.Processes = make([]Process, 0, len(ps))
		for _, p := range ps {
			proc := Process{PID: p.Pid}
			if p.UsedGpuMemory != notAvailable64 {
				proc.UsedMemory = ptr(p.UsedGpuMemory)
			}
			r.Processes = append(r.Processes, proc)
		}
	}
	return r
}

// check reports whether ret is SUCCESS. Otherwise it notes the failure (logged
// once per GPU, query and code) and, unless the query is merely unsupported,
// records it in r.
func (s *Sampler) check(r *Reading, query string, ret nvml.Return) bool {
	if ret == nvml.SUCCESS {
		return true
	}
	s.note(r.Index, query, ret)
	if unsupported(ret) {
		return false
	}
	if ret == nvml.ERROR_GPU_IS_LOST {
		r.Lost = true
	}
	r.Errors = append(r.Errors, query+": "+ret.Error())
	return false
}
