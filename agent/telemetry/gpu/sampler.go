package gpu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// ErrNoDriver is returned (wrapped) by Open when there is no NVIDIA driver to
// talk to: NVML's Init returned ERROR_LIBRARY_NOT_FOUND (libnvidia-ml.so.1 could
// not be loaded) or ERROR_DRIVER_NOT_LOADED (the library is there, the kernel
// driver is not). Callers say so once and carry on without GPU telemetry.
var ErrNoDriver = errors.New("gpu: no NVIDIA driver")

// Sampler samples the GPUs of one host. Open makes one; Run drives it.
type Sampler struct {
	lib  nvml.Interface
	opts Options
	log  *slog.Logger
	info Info
	devs []*device // fixed after Open

	// round is a semaphore: one round of queries at a time, and no Shutdown
	// while one is in flight. It guards the devices' slow-query cache.
	round  chan struct{}
	closed atomic.Bool // Close was called: no round starts any more

	mu      sync.Mutex // guards latest, cost and lastXID; never held across an NVML call
	latest  []Reading
	cost    time.Duration
	lastXID map[int]uint64

	logMu  sync.Mutex // guards logged
	logged map[logKey]bool

	events  chan Event
	dropped atomic.Uint64
	running atomic.Bool

	closeOnce sync.Once
	closeErr  error

	// Hooks the tests replace.
	newTicker   func(time.Duration) (<-chan time.Time, func())
	waitTimeout time.Duration // how long one EventSet.Wait may block
	errBackoff  time.Duration // pause after an EventSet.Wait error
}

// device is one GPU: its handle, what Open learned, and the slow queries' last values.
type device struct {
	h    nvml.Device
	info Device

	slowTx, slowRx *uint64
	slowReplays    *uint32
	slowTime       time.Time
}

type logKey struct {
	gpu   int
	query string
	ret   nvml.Return
}

// Open initializes NVML and discovers the GPUs. When there is no driver the
// error matches ErrNoDriver (errors.Is). The Sampler owns the NVML session:
// Run ends it, or Close when Run is not used.
func Open(lib nvml.Interface, opts Options) (*Sampler, error) {
	opts = opts.withDefaults()
	switch ret := lib.Init(); ret {
	case nvml.SUCCESS:
	case nvml.ERROR_LIBRARY_NOT_FOUND, nvml.ERROR_DRIVER_NOT_LOADED:
		return nil, fmt.Errorf("%w: nvml init: %w", ErrNoDriver, ret)
	default:
		return nil, fmt.Errorf("gpu: nvml init: %w", ret)
	}
	s := &Sampler{
		lib:         lib,
		opts:        opts,
		log:         opts.Logger,
		round:       make(chan struct{}, 1),
		lastXID:     make(map[int]uint64),
		logged:      make(map[logKey]bool),
		events:      make(chan Event, opts.EventBuffer),
		newTicker:   realTicker,
		waitTimeout: time.Second,
		errBackoff:  time.Second,
	}
	if err := s.discover(); err != nil {
		if ret := lib.Shutdown(); ret != nvml.SUCCESS {
			err = errors.Join(err, fmt.Errorf("gpu: nvml shutdown: %w", ret))
		}
		return nil, err
	}
	return s, nil
}

func realTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// discover fills s.info and s.devs. A GPU whose handle cannot be had is left
// out and logged; failing to count the GPUs is an error.
func (s *Sampler) discover() error {
	if v, ret := s.lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		s.info.Driver = v
	}
	if v, ret := s.lib.SystemGetNVMLVersion(); ret == nvml.SUCCESS {
		s.info.NVML = v
	}
	if v, ret := s.lib.SystemGetCudaDriverVersion(); ret == nvml.SUCCESS {
		s.info.CUDA = cudaVersion(v)
	}
	n, ret := s.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return fmt.Errorf("gpu: nvml device count: %w", ret)
	}
	for i := range n {
		h, ret := s.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			s.log.Warn("gpu: cannot open GPU; no telemetry for it", "gpu", i, "err", ret.Error())
			continue
		}
		d := Device{Index: i, Minor: -1}
		if v, ret := h.GetUUID(); ret == nvml.SUCCESS {
			d.UUID = v
		}
		if v, ret := h.GetName(); ret == nvml.SUCCESS {
			d.Name = v
		}
		if v, ret := h.GetPciInfo(); ret == nvml.SUCCESS {
			d.PCIBusID = busID(v.BusId)
		}
		if v, ret := h.GetMemoryInfo(); ret == nvml.SUCCESS {
			d.MemTotal = v.Total
		}
		if v, ret := h.GetMinorNumber(); ret == nvml.SUCCESS {
			d.Minor = v
		}
		s.devs = append(s.devs, &device{h: h, info: d})
		s.info.Devices = append(s.info.Devices, d)
	}
	return nil
}

// cudaVersion formats NVML's CUDA driver version (1000*major + 10*minor) as "major.minor".
func cudaVersion(v int) string {
	return fmt.Sprintf("%d.%d", v/1000, v%1000/10)
}

// busID turns NVML's NUL-terminated C string into a Go string.
func busID(b [32]int8) string {
	var sb strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}

// Info returns what Open learned about the driver and the GPUs.
func (s *Sampler) Info() Info {
	i := s.info
	i.Devices = append([]Device(nil), s.info.Devices...)
	return i
}

// Latest returns a copy of the newest readings, one per GPU, with the last XID
// seen by the event watcher. It never waits for an NVML call in flight; before
// the first round it returns nil.
func (s *Sampler) Latest() []Reading {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.latest == nil {
		return nil
	}
	out := make([]Reading, len(s.latest))
	for i, r := range s.latest {
		out[i] = r.clone()
		out[i].XIDErrors = s.lastXID[r.Index]
	}
	return out
}

// SampleCost returns how long the last round took (by Options.Clock), for the
// overhead report.
func (s *Sampler) SampleCost() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cost
}

// Events returns the channel of driver events. It is buffered (Options.EventBuffer);
// when it is full the watcher drops the event and counts it (DroppedEvents)
// rather than wait. It is never closed (a closed channel would hand a select
// zero Events): stop reading when the context given to Run ends.
func (s *Sampler) Events() <-chan Event { return s.events }

// DroppedEvents returns how many events were dropped because Events was full.
func (s *Sampler) DroppedEvents() uint64 { return s.dropped.Load() }

// SampleOnce runs one round now, slow queries included, publishes it for
// Latest, and returns it (for baton doctor). It returns nil when ctx ends
// first (an NVML call in flight then finishes on its own) or after Close.
func (s *Sampler) SampleOnce(ctx context.Context) []Reading {
	done := make(chan []Reading, 1)
	go func() { done <- s.sample(ctx, true) }()
	select {
	case r := <-done:
		return r
	case <-ctx.Done():
		return nil
	}
}

// Run samples every Options.Interval until ctx ends, the slow queries every
// Options.SlowEvery rounds, starting with a full round. It blocks (callers run
// it on a goroutine of its own), starts the event watcher on another, and at the
// end waits for the round and the watcher in flight (the watcher wakes up at
// least every second) and shuts NVML down (Close). It returns nil when ctx
// ended, or the shutdown error.
func (s *Sampler) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("gpu: Run called twice")
	}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		s.watch(ctx)
	}()
	tick, stop := s.newTicker(s.opts.Interval)
	defer stop()
	// A round lasts milliseconds and an NVML call cannot be interrupted
	// anyway: Run finishes the round it is in rather than publish half of one.
	roundCtx := context.WithoutCancel(ctx)
	for n := 0; ; n++ {
		s.sample(roundCtx, n%s.opts.SlowEvery == 0)
		select {
		case <-ctx.Done():
			<-watched
			return s.Close()
		case <-tick:
		}
	}
}

// Close ends the NVML session; Run calls it on its way out, so only callers
// that never Run (baton doctor) need to. No round starts after it. If a round
// is inside an NVML call (a wedged driver), Close does not wait for it: NVML
// is shut down when that call returns, and Close returns nil. Later calls
// return the first call's result.
func (s *Sampler) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		select {
		case s.round <- struct{}{}:
			s.closeErr = s.shutdown()
		default:
			go func() {
				s.round <- struct{}{}
				if err := s.shutdown(); err != nil {
					s.log.Warn("gpu: closing NVML after a slow call", "err", err)
				}
			}()
		}
	})
	return s.closeErr
}

// shutdown ends the NVML session; the caller holds s.round, which it releases.
func (s *Sampler) shutdown() error {
	defer func() { <-s.round }()
	if ret := s.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("gpu: nvml shutdown: %w", ret)
	}
	return nil
}

// sample runs one round and publishes it. It returns nil when ctx ends before
// the round could start or after Close.
func (s *Sampler) sample(ctx context.Context, slow bool) []Reading {
	if s.closed.Load() {
		return nil
	}
	select {
	case s.round <- struct{}{}:
	case <-ctx.Done():
		return nil
	}
	defer func() { <-s.round }()
	if s.closed.Load() || ctx.Err() != nil {
		return nil
	}
	start := s.opts.Clock()
	out := make([]Reading, 0, len(s.devs))
	for _, d := range s.devs {
		if ctx.Err() != nil {
			break
		}
		out = append(out, s.read(d, slow))
	}
	cost := s.opts.Clock().Sub(start)

	s.mu.Lock()
	defer s.mu.Unlock()
	if len(out) == len(s.devs) || s.latest == nil {
		s.latest = out
		s.cost = cost
	} else {
		// A round cut short by ctx replaces only the GPUs it reached.
		s.latest = append(out, s.latest[len(out):]...)
	}
	ret := make([]Reading, len(out))
	for i, r := range out {
		ret[i] = r.clone()
		ret[i].XIDErrors = s.lastXID[r.Index]
	}
	return ret
}

// note logs the first time a query fails on a GPU with a given return code, so
// that an unsupported or failing query does not repeat itself every round.
func (s *Sampler) note(gpu int, query string, ret nvml.Return) {
	if !s.first(gpu, query, ret) {
		return
	}
	if unsupported(ret) {
		s.log.Info("gpu: query not supported; the field stays empty", "gpu", gpu, "query", query, "err", ret.Error())
		return
	}
	s.log.Warn("gpu: query failed; the field stays empty (logged once)", "gpu", gpu, "query", query, "err", ret.Error())
}

func unsupported(ret nvml.Return) bool {
	return ret == nvml.ERROR_NOT_SUPPORTED || ret == nvml.ERROR_FUNCTION_NOT_FOUND
}

// first reports whether this is the first time query met ret on gpu.
func (s *Sampler) first(gpu int, query string, ret nvml.Return) bool {
	k := logKey{gpu: gpu, query: query, ret: ret}
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if s.logged[k] {
		return false
	}
	s.logged[k] = true
	return true
}
