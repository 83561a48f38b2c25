package gpu

import (
	"context"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// withEvents gives srv an event set whose Wait hands out what the test pushes.
func withEvents(srv *server.Server) *eventQueue {
	q := newEventQueue()
	srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return q, nvml.SUCCESS }
	return q
}

func TestEvents(t *testing.T) {
	t.Parallel()
	srv := newH100(2)
	q := withEvents(srv)
	h := open(t, srv, Options{})
	run := h.run()
	d0, d1 := srv.Devices[0], srv.Devices[1]
	now := h.clock.Now()

	for _, tc := range []struct {
		name string
		data nvml.EventData
		want Event
	}{
		{"critical XID", nvml.EventData{Device: d1, EventType: nvml.EventTypeXidCriticalError, EventData: 79},
			Event{Time: now, Index: 1, UUID: uuidOf(1), Kind: "xid", XID: 79, Critical: true, Detail: "XID 79: GPU has fallen off the bus"}},
		{"application XID", nvml.EventData{Device: d0, EventType: nvml.EventTypeXidCriticalError, EventData: 13},
			Event{Time: now, Index: 0, UUID: uuidOf(0), Kind: "xid", XID: 13, Detail: "XID 13: graphics engine exception"}},
		{"XID without a name", nvml.EventData{Device: d0, EventType: nvml.EventTypeXidCriticalError, EventData: 999},
			Event{Time: now, Index: 0, UUID: uuidOf(0), Kind: "xid", XID: 999, Detail: "XID 999"}},
		{"double-bit ECC", nvml.EventData{Device: d0, EventType: nvml.EventTypeDoubleBitEccError},
			Event{Time: now, Index: 0, UUID: uuidOf(0), Kind: "ecc_uncorrectable", Critical: true, Detail: "uncorrectable (double-bit) ECC memory error"}},
		{"single-bit ECC", nvml.EventData{Device: d1, EventType: nvml.EventTypeSingleBitEccError},
			Event{Time: now, Index: 1, UUID: uuidOf(1), Kind: "ecc_corrected", Detail: "corrected (single-bit) ECC memory error"}},
		{"other event, no device", nvml.EventData{EventType: nvml.EventTypePState, EventData: 2},
			Event{Time: now, Index: -1, Kind: "event_0x4", Detail: "NVML event type 0x4, data 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q.push(t, tc.data, nvml.SUCCESS)
			got := within(t, h.s.Events())
			if got != tc.want {
				t.Errorf("event = %+v\nwant %+v", got, tc.want)
			}
		})
	}

	// Timeouts and errors of Wait do not stop the watcher.
	q.push(t, nvml.EventData{}, nvml.ERROR_TIMEOUT)
	q.push(t, nvml.EventData{}, nvml.ERROR_UNKNOWN)
	q.push(t, nvml.EventData{}, nvml.ERROR_UNKNOWN)
	q.push(t, nvml.EventData{Device: d0, EventType: nvml.EventTypeXidCriticalError, EventData: 48}, nvml.SUCCESS)
	if e := within(t, h.s.Events()); e.XID != 48 || e.Index != 0 || !e.Critical {
		t.Errorf("event after Wait errors = %+v", e)
	}
	if n := h.logs.count("waiting for driver events failed"); n != 1 {
		t.Errorf("Wait errors logged %d times, want once:\n%s", n, h.logs)
	}

	// The last XID of each GPU shows in its readings.
	rs := h.s.SampleOnce(context.Background())
	if rs[0].XIDErrors != 48 || rs[1].XIDErrors != 79 {
		t.Errorf("XIDErrors = %d, %d; want 48, 79", rs[0].XIDErrors, rs[1].XIDErrors)
	}
	if l := h.s.Latest(); l[0].XIDErrors != 48 || l[1].XIDErrors != 79 {
		t.Errorf("Latest XIDErrors = %d, %d; want 48, 79", l[0].XIDErrors, l[1].XIDErrors)
	}

	// The watcher registered what each GPU supports of XID and ECC events.
	for i := range 2 {
		calls := dev(srv, i).RegisterEventsCalls()
		if len(calls) != 1 || calls[0].V != watchedEvents || calls[0].EventSet != q {
			t.Errorf("GPU %d: RegisterEvents calls = %+v", i, calls)
		}
	}

	// Ending ctx stops the watcher at its next wakeup; Run waits for it.
	run.cancel()
	q.end()
	if err := run.wait(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := len(q.FreeCalls()); n != 1 {
		t.Errorf("event set freed %d times, want 1", n)
	}
	if n := len(srv.ShutdownCalls()); n != 1 {
		t.Errorf("Shutdown called %d times, want 1", n)
	}
}

func TestEventsDroppedWhenFull(t *testing.T) {
	t.Parallel()
	srv := newH100(1)
	q := withEvents(srv)
	h := open(t, srv, Options{EventBuffer: 1})
	run := h.run()
	for _, xid := range []uint64{31, 43, 79} {
		q.push(t, nvml.EventData{Device: srv.Devices[0], EventType: nvml.EventTypeXidCriticalError, EventData: xid}, nvml.SUCCESS)
	}
	q.push(t, nvml.EventData{}, nvml.ERROR_TIMEOUT) // the watcher is done with the third event
	if n := h.s.DroppedEvents(); n != 2 {
		t.Errorf("DroppedEvents = %d, want 2", n)
	}
	if e := within(t, h.s.Events()); e.XID != 31 {
		t.Errorf("kept event %+v, want the first", e)
	}
	if n := h.logs.count("event channel full"); n != 1 {
		t.Errorf("drops logged %d times, want once", n)
	}
	// A dropped event still counts for the GPU's last XID.
	if rs := h.s.SampleOnce(context.Background()); rs[0].XIDErrors != 79 {
		t.Errorf("XIDErrors = %d, want 79", rs[0].XIDErrors)
	}
	run.cancel()
	q.end()
	if err := run.wait(); err != nil {
		t.Fatal(err)
	}
}

// TestEventsUnavailable: without events Run goes on sampling, says why once,
// and still stops cleanly.
func TestEventsUnavailable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		setup   func(srv *server.Server, q *eventQueue)
		log     string
		freed   int
		logsPer int
	}{
		{"no event set", func(srv *server.Server, q *eventQueue) {
			srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return nil, nvml.ERROR_NOT_SUPPORTED }
		}, "cannot watch XID and ECC events", 0, 0},
		{"GPUs support none", func(srv *server.Server, q *eventQueue) {
			for i := range srv.Devices {
				dev(srv, i).GetSupportedEventTypesFunc = func() (uint64, nvml.Return) { return nvml.EventTypePState, nvml.SUCCESS }
			}
		}, "reports no XID or ECC events", 1, 1},
		{"registration refused", func(srv *server.Server, q *eventQueue) {
			for i := range srv.Devices {
				d := dev(srv, i)
				d.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
				d.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.ERROR_NOT_SUPPORTED }
			}
		}, "cannot watch the GPU's XID and ECC events", 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newH100(2)
			q := withEvents(srv)
			tc.setup(srv, q)
			h := open(t, srv, Options{})
			run := h.run()
			h.tick <- h.clock.Now() // Run samples on
			if err := run.stop(); err != nil {
				t.Fatal(err)
			}
			if n := len(dev(srv, 0).GetUtilizationRatesCalls()); n != 2 {
				t.Errorf("%d rounds, want 2", n)
			}
			if n := h.logs.count(tc.log); n == 0 || (tc.logsPer > 0 && h.logs.count(tc.log, "gpu=0") != tc.logsPer) {
				t.Errorf("log lacks %q once per GPU:\n%s", tc.log, h.logs)
			}
			if n := len(q.FreeCalls()); n != tc.freed {
				t.Errorf("event set freed %d times, want %d", n, tc.freed)
			}
			if len(q.WaitCalls()) != 0 {
				t.Errorf("waited for events although none are registered")
			}
		})
	}
}
