package gpu

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/internal/fakeclock"
	"github.com/batonrun/baton/internal/syncbuf"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/batonrun/baton/agent/telemetry/gpu/gputest"
)

// The mock H100 lives in package gputest, shared with other packages' tests.
const (
	h100Total    = gputest.H100Total
	h100Reserved = gputest.H100Reserved
	h100Used     = gputest.H100Used
)

func newH100(n int) *server.Server                 { return gputest.NewH100(n) }
func dev(srv *server.Server, i int) *server.Device { return gputest.Dev(srv, i) }
func uuidOf(i int) string                          { return gputest.UUID(i) }
func busOf(i int) string                           { return gputest.BusID(i) }

func newClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
}

// logBuf collects the Sampler's log lines.
type logBuf struct{ syncbuf.Buffer }

// count returns how many lines contain every one of subs.
func (l *logBuf) count(subs ...string) int {
	n := 0
	for line := range strings.Lines(l.String()) {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}

// harness is a Sampler on a mock, with a fake clock, captured logs and a
// ticker the test drives.
type harness struct {
	t     *testing.T
	srv   *server.Server
	s     *Sampler
	clock *fakeclock.Clock
	logs  *logBuf
	tick  chan time.Time
}

func open(t *testing.T, srv *server.Server, opts Options) *harness {
	t.Helper()
	h := &harness{t: t, srv: srv, clock: newClock(), logs: &logBuf{}, tick: make(chan time.Time)}
	opts.Clock = h.clock.Now
	opts.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Open(srv, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s.newTicker = func(time.Duration) (<-chan time.Time, func()) { return h.tick, func() {} }
	s.errBackoff = 0
	h.s = s
	return h
}

// running is a Run in progress.
type running struct {
	t      *testing.T
	cancel context.CancelFunc
	done   chan error
}

// run starts Run.
func (h *harness) run() *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{t: h.t, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- h.s.Run(ctx) }()
	return r
}

// wait returns Run's error.
func (r *running) wait() error { return within(r.t, r.done) }

// stop cancels Run and returns its error.
func (r *running) stop() error {
	r.cancel()
	return r.wait()
}

// within waits for a value; the limit only turns a hang into a failure.
func within[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timed out: something blocked")
		var zero T
		return zero
	}
}

// eventQueue is an EventSet whose Wait hands out what the test pushes.
type eventQueue struct {
	mock.EventSet
	q    chan waitResult
	done chan struct{}
}

type waitResult struct {
	data nvml.EventData
	ret  nvml.Return
}

func newEventQueue() *eventQueue {
	e := &eventQueue{q: make(chan waitResult), done: make(chan struct{})}
	e.WaitFunc = func(uint32) (nvml.EventData, nvml.Return) {
		select {
		case r := <-e.q:
			return r.data, r.ret
		case <-e.done:
			return nvml.EventData{}, nvml.ERROR_TIMEOUT
		}
	}
	e.FreeFunc = func() nvml.Return { return nvml.SUCCESS }
	return e
}

// push hands the watcher one result of Wait; it returns once the watcher has
// taken it, that is once the watcher is done with the result before.
func (e *eventQueue) push(t *testing.T, data nvml.EventData, ret nvml.Return) {
	t.Helper()
	select {
	case e.q <- waitResult{data, ret}:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out: the watcher is not waiting")
	}
}

// end makes every later Wait time out at once, as NVML's does after its
// timeout, so that a watcher whose context ended sees it and stops.
func (e *eventQueue) end() { close(e.done) }
