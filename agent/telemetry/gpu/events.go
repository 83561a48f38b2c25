package gpu

import (
	"context"
	"fmt"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// watchedEvents are the NVML event types the watcher registers, where the GPU
// supports them.
const watchedEvents = nvml.EventTypeXidCriticalError | nvml.EventTypeDoubleBitEccError | nvml.EventTypeSingleBitEccError

// watch registers for XID and ECC events on every GPU that supports them and
// waits for them until ctx ends, publishing each on s.events. NVML's wait
// cannot be interrupted, so it waits at most s.waitTimeout at a time: stopping
// takes up to that long.
func (s *Sampler) watch(ctx context.Context) {
	set, ret := s.lib.EventSetCreate()
	if ret != nvml.SUCCESS {
		s.log.Warn("gpu: cannot watch XID and ECC events", "err", ret.Error())
		return
	}
	defer func() {
		if ret := set.Free(); ret != nvml.SUCCESS {
			s.log.Warn("gpu: freeing the event set", "err", ret.Error())
		}
	}()

	registered := 0
	for _, d := range s.devs {
		mask := uint64(watchedEvents)
		if supported, ret := d.h.GetSupportedEventTypes(); ret == nvml.SUCCESS {
			mask &= supported
		} else {
			s.log.Info("gpu: cannot ask which events the GPU supports; trying all", "gpu", d.info.Index, "err", ret.Error())
		}
		if mask == 0 {
			s.log.Info("gpu: the GPU reports no XID or ECC events", "gpu", d.info.Index)
			continue
		}
		if ret := d.h.RegisterEvents(mask, set); ret != nvml.SUCCESS {
			s.log.Warn("gpu: cannot watch the GPU's XID and ECC events", "gpu", d.info.Index, "err", ret.Error())
			continue
		}
		registered++
	}
	if registered == 0 {
		return
	}

	timeoutMs := uint32(s.waitTimeout / time.Millisecond)
	for ctx.Err() == nil {
		data, ret := set.Wait(timeoutMs)
		switch ret {
		case nvml.SUCCESS:
			s.handle(data)
		case nvml.ERROR_TIMEOUT:
		default:
			// Wait may fail at once, again and again (a GPU lost): pause so
			// that the watcher does not spin, and say it once per code.
			if s.first(-1, "event_wait", ret) {
				s.log.Warn("gpu: waiting for driver events failed; retrying (logged once per error)", "err", ret.Error())
			}
			select {
			case <-ctx.Done():
			case <-time.After(s.errBackoff):
			}
		}
	}
}

// handle turns NVML's event into an Event, records the last XID of its GPU,
// and publishes it without ever blocking.
func (s *Sampler) handle(data nvml.EventData) {
	e := Event{Time: s.opts.Clock(), Index: -1}
	if d := s.eventDevice(data.Device); d != nil {
		e.Index, e.UUID = d.info.Index, d.info.UUID
	}
	switch {
	case data.EventType&nvml.EventTypeXidCriticalError != 0:
		e.Kind, e.XID, e.Critical = "xid", data.EventData, CriticalXID(data.EventData)
		e.Detail = xidDetail(data.EventData)
		if e.Index >= 0 {
			s.mu.Lock()
			s.lastXID[e.Index] = data.EventData
			s.mu.Unlock()
		}
	case data.EventType&nvml.EventTypeDoubleBitEccError != 0:
		e.Kind, e.Critical, e.Detail = "ecc_uncorrectable", true, "uncorrectable (double-bit) ECC memory error"
	case data.EventType&nvml.EventTypeSingleBitEccError != 0:
		e.Kind, e.Detail = "ecc_corrected", "corrected (single-bit) ECC memory error"
	default:
		e.Kind = fmt.Sprintf("event_%#x", data.EventType)
		e.Detail = fmt.Sprintf("NVML event type %#x, data %d", data.EventType, data.EventData)
	}

	attrs := []any{"gpu", e.Index, "uuid", e.UUID, "kind", e.Kind, "xid", e.XID, "detail", e.Detail}
	if e.Critical {
		s.log.Error("gpu: critical driver event", attrs...)
	} else {
		s.log.Info("gpu: driver event", attrs...)
	}

	select {
	case s.events <- e:
	default:
		if s.dropped.Add(1) == 1 {
			s.log.Warn("gpu: event channel full; dropping events (counted in DroppedEvents)")
		}
	}
}

// eventDevice finds the GPU an event names, by UUID (the handle NVML passes
// with an event need not compare equal to the one Open got).
func (s *Sampler) eventDevice(h nvml.Device) *device {
	if h == nil {
		return nil
	}
	uuid, ret := h.GetUUID()
	if ret != nvml.SUCCESS {
		return nil
	}
	for _, d := range s.devs {
		if d.info.UUID == uuid {
			return d
		}
	}
	return nil
}
