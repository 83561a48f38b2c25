package agent

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/agent/telemetry/gpu/gputest"
	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/sync/file/filetest"
)

// These tests run the agent in this process, on go-nvml's mock of an H100
// server, to drive the health policy: a GPU unhealthy at the start, an XID
// mid-run, a hung trainer. The trainer is /bin/sh.

// watchWriter keeps what is written and closes a channel when a chosen
// text first appears.
type watchWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want map[string]chan struct{}
}

func newWatchWriter(texts ...string) *watchWriter {
	w := &watchWriter{want: map[string]chan struct{}{}}
	for _, s := range texts {
		w.want[s] = make(chan struct{})
	}
	return w
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for s, ch := range w.want {
		if ch != nil && strings.Contains(w.buf.String(), s) {
			close(ch)
			w.want[s] = nil
		}
	}
	return len(p), nil
}

// seen returns a channel closed once text was written (it must have been
// named to newWatchWriter).
func (w *watchWriter) seen(t *testing.T, text string) {
	t.Helper()
	w.mu.Lock()
	ch, ok := w.want[text]
	w.mu.Unlock()
	if !ok {
		t.Fatalf("%q was not watched", text)
	}
	if ch == nil {
		return
	}
	select {
	case <-ch:
	case <-time.After(2 * time.Minute): // a hang guard, not a timing assertion
		t.Fatalf("gave up waiting for %q; output so far:\n%s", text, w.String())
	}
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// healthRun is one in-process run on a mock GPU server.
type healthRun struct {
	cfg    config.Config
	srv    *server.Server
	out    *watchWriter // the trainer's output
	logs   *watchWriter // baton's log
	store  string       // the file store's directory
	code   chan int
	cancel context.CancelFunc
}

func newHealthRun(t *testing.T, srv *server.Server, watch ...string) *healthRun {
	dir := t.TempDir()
	h := &healthRun{srv: srv, out: newWatchWriter(watch...), logs: newWatchWriter("metrics endpoint", "run ended", "host given up"),
		store: filepath.Join(dir, "store"), code: make(chan int, 1)}
	h.cfg = config.Config{
		Store: "file://" + h.store, RunID: "health", CheckpointDir: filepath.Join(dir, "ckpt"),
		Keep: 3, OnExit: "none", Restarts: 1, RestartBackoff: time.Millisecond, Grace: 5 * time.Second,
		LeaseDuration: time.Minute, Workers: 4, PartSize: 16 << 20, ChunkSize: 1 << 20, S3Driver: "aws",
		MetricsAddr: "127.0.0.1:0", TelemetryInterval: 20 * time.Millisecond, TelemetryUpload: time.Hour,
		GPUCheck: true, OnUnhealthy: "give-up", OnHang: "restart",
	}
	return h
}

// start runs the agent with script as the trainer.
func (h *healthRun) start(t *testing.T, script string) {
	ctx, cancel := context.WithCancel(t.Context())
	h.cancel = cancel
	t.Cleanup(cancel)
	// The log goes to h.logs only, never to t from the agent's goroutine
	// (t.Log panics once the test has ended, and the agent may still log);
	// it is printed from here if the test fails.
	log := slog.New(slog.NewTextHandler(h.logs, nil))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("baton's log:\n%s", h.logs)
		}
	})
	go func() {
		h.code <- Run(ctx, h.cfg, []string{"/bin/sh", "-c", script}, Deps{
			Environ: []string{"PATH=" + os.Getenv("PATH")}, Root: fstest.MapFS{},
			Stdout: h.out, Stderr: h.out, Logger: log, NVML: h.srv, Version: "test",
		})
	}()
}

func (h *healthRun) wait(t *testing.T) int {
	t.Helper()
	select {
	case c := <-h.code:
		return c
	case <-time.After(2 * time.Minute):
		t.Fatalf("the run did not end; baton's log:\n%s", h.logs)
		return -1
	}
}

// xidEvents makes the mock's event set deliver the XIDs sent on the
// returned channel, as events of GPU 0.
func xidEvents(srv *server.Server) chan<- uint64 {
	ch := make(chan uint64, 1)
	set := &mock.EventSet{
		WaitFunc: func(ms uint32) (nvml.EventData, nvml.Return) {
			select {
			case x := <-ch:
				return nvml.EventData{Device: srv.Devices[0], EventType: nvml.EventTypeXidCriticalError, EventData: x}, nvml.SUCCESS
			case <-time.After(time.Duration(ms) * time.Millisecond):
				return nvml.EventData{}, nvml.ERROR_TIMEOUT
			}
		},
		FreeFunc: func() nvml.Return { return nvml.SUCCESS },
	}
	srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return set, nvml.SUCCESS }
	return ch
}

// healthRepo opens run "health" in the file store at store, to read.
func healthRepo(t *testing.T, store string) *checkpoint.Repo {
	t.Helper()
	repo, err := checkpoint.Open(filetest.Open(t, store), checkpoint.Options{Run: "health"})
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

func checkpoints(t *testing.T, store string) []checkpoint.Summary {
	t.Helper()
	list, err := healthRepo(t, store).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// TestUnhealthyGPUAtStart: a pending row remap refuses the run before the
// lease is taken: exit 77, the trainer never starts, no lease is taken, and
// the machine is recorded as bad for the run (by its GPUs' UUIDs).
func TestUnhealthyGPUAtStart(t *testing.T) {
	srv := gputest.NewH100(2)
	gputest.Dev(srv, 1).GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 0, 1, true, false, nvml.SUCCESS }
	h := newHealthRun(t, srv)
	h.start(t, "echo trained")
	if code := h.wait(t); code != ExitUnhealthy {
		t.Fatalf("exit %d, want %d; log:\n%s", code, ExitUnhealthy, h.logs)
	}
	if strings.Contains(h.out.String(), "trained") {
		t.Error("the trainer ran on an unhealthy GPU")
	}
	if !strings.Contains(h.logs.String(), gputest.UUID(1)) {
		t.Errorf("the log does not name the bad GPU %s:\n%s", gputest.UUID(1), h.logs)
	}
	if _, err := os.Stat(filepath.Join(h.store, "runs", "health", "lease.json")); !os.IsNotExist(err) {
		t.Errorf("a lease was taken (%v); a refused host must not take it", err)
	}
	wantBadHost(t, h.store, gputest.UUID(0))
}

// wantBadHost checks that the run recorded one bad machine, named with
// the GPU UUID uuid.
func wantBadHost(t *testing.T, store, uuid string) {
	t.Helper()
	hosts, err := healthRepo(t, store).BadHosts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 1 || !strings.Contains(hosts[0].Machine, uuid) || hosts[0].Status != ExitUnhealthy {
		t.Fatalf("bad hosts recorded: %+v, want one naming %s with status %d", hosts, uuid, ExitUnhealthy)
	}
}

// TestCriticalXIDGivesHostUp: a critical XID mid-run stops the trainer,
// commits what it saved, releases the lease and exits 77; before that the
// metrics endpoint serves the GPUs under DCGM names and the lease as held.
func TestCriticalXIDGivesHostUp(t *testing.T) {
	srv := gputest.NewH100(1)
	xids := xidEvents(srv)
	h := newHealthRun(t, srv, "saved")
	h.start(t, `echo step-100 > "$BATON_CHECKPOINT_DIR/state"; echo saved; trap 'echo bye; exit 0' TERM; while :; do sleep 0.05; done`)
	h.out.seen(t, "saved")
	h.logs.seen(t, "metrics endpoint")
	url := regexp.MustCompile(`url=(http://\S+/metrics)`).FindStringSubmatch(h.logs.String())
	if url == nil {
		t.Fatalf("no metrics URL in the log:\n%s", h.logs)
	}
	body := scrape(t, url[1])
	for _, want := range []string{`DCGM_FI_DEV_GPU_UTIL{`, `UUID="` + gputest.UUID(0) + `"`, "baton_lease_state 1", `baton_info{`, "baton_gpu_sample_seconds"} {
		if !strings.Contains(body, want) {
			t.Errorf("the scrape lacks %q", want)
		}
	}
	xids <- 79 // fallen off the bus
	if code := h.wait(t); code != ExitUnhealthy {
		t.Fatalf("exit %d, want %d; log:\n%s", code, ExitUnhealthy, h.logs)
	}
	if !strings.Contains(h.out.String(), "bye") {
		t.Error("the trainer was not asked to stop (no SIGTERM seen)")
	}
	list := checkpoints(t, h.store)
	if len(list) == 0 {
		t.Fatal("nothing was committed before the host was given up")
	}
	if !strings.Contains(h.logs.String(), "XID 79") {
		t.Errorf("the log does not name the XID:\n%s", h.logs)
	}
	wantBadHost(t, h.store, gputest.UUID(0))
}

// TestHangRestartsTrainer: a trainer that goes silent while the GPUs sit
// idle is restarted (--on-hang=restart); the second attempt finishes.
func TestHangRestartsTrainer(t *testing.T) {
	h := newHealthRun(t, idleH100())
	h.cfg.HangTimeout = 300 * time.Millisecond
	h.cfg.Grace = time.Second
	h.start(t, `if [ "$BATON_ATTEMPT" = 0 ]; then echo stuck; trap '' TERM; exec sleep 1000; fi; echo done`)
	if code := h.wait(t); code != 0 {
		t.Fatalf("exit %d, want 0 after a restart; log:\n%s", code, h.logs)
	}
	if !strings.Contains(h.logs.String(), "trainer hung: restarting it") {
		t.Errorf("no hang reported:\n%s", h.logs)
	}
	if !strings.Contains(h.out.String(), "done") {
		t.Error("the second attempt did not run")
	}
}

// TestHangGivesUp: with --on-hang=give-up a hung trainer ends the run with
// exit 78.
func TestHangGivesUp(t *testing.T) {
	srv := gputest.NewH100(1)
	gputest.Dev(srv, 0).GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		return nvml.Utilization{Gpu: 100}, nvml.SUCCESS // pinned; the mock draws 612 W of 700, so: stuck only at low power
	}
	gputest.Dev(srv, 0).GetPowerUsageFunc = func() (uint32, nvml.Return) { return 90000, nvml.SUCCESS }
	h := newHealthRun(t, srv)
	h.cfg.HangTimeout = 300 * time.Millisecond
	h.cfg.OnHang = "give-up"
	h.start(t, `echo stuck; exec sleep 1000`)
	if code := h.wait(t); code != ExitHung {
		t.Fatalf("exit %d, want %d; log:\n%s", code, ExitHung, h.logs)
	}
	if !strings.Contains(h.logs.String(), "pinned at 100% at low power") {
		t.Errorf("the verdict does not say why:\n%s", h.logs)
	}
}

// idleH100 is a mock server of one H100 that sits idle: 0% utilization.
func idleH100() *server.Server {
	srv := gputest.NewH100(1)
	gputest.Dev(srv, 0).GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.SUCCESS }
	return srv
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// TestNoHangBetweenAttempts: the backoff before a restart is longer than
// the hang timeout, yet nothing is hung while no trainer runs.
func TestNoHangBetweenAttempts(t *testing.T) {
	h := newHealthRun(t, idleH100())
	h.cfg.HangTimeout = 200 * time.Millisecond
	h.cfg.RestartBackoff = time.Second
	h.cfg.OnHang = "give-up"
	h.start(t, `if [ "$BATON_ATTEMPT" = 0 ]; then exit 3; fi; echo second`)
	if code := h.wait(t); code != 0 {
		t.Fatalf("exit %d, want 0 from the second attempt; log:\n%s", code, h.logs)
	}
	if strings.Contains(h.logs.String(), "hung") {
		t.Errorf("a hang was reported while no trainer ran:\n%s", h.logs)
	}
}
