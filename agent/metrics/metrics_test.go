package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/internal/fakeclock"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/batonrun/baton/agent/telemetry/host"
)

func newClock() *fakeclock.Clock { return fakeclock.New(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)) }

// families gathers m and indexes the families by name.
func families(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	fs, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fs {
		out[f.GetName()] = f
	}
	return out
}

// TestFreshMetrics: before anything happens, the event series are present
// at zero, and the series that would lie (checkpoint age, info, host) are
// absent.
func TestFreshMetrics(t *testing.T) {
	t.Parallel()
	m := New(WithClock(newClock().Now))
	fs := families(t, m)
	wantTypes := map[string]dto.MetricType{
		"baton_commit_duration_seconds":         dto.MetricType_HISTOGRAM,
		"baton_commit_bytes_uploaded_total":     dto.MetricType_COUNTER,
		"baton_commit_bytes_deduplicated_total": dto.MetricType_COUNTER,
		"baton_commits_total":                   dto.MetricType_COUNTER,
		"baton_transfers_in_flight":             dto.MetricType_GAUGE,
		"baton_trainer_restarts_total":          dto.MetricType_COUNTER,
		"baton_lease_state":                     dto.MetricType_GAUGE,
	}
	for name, typ := range wantTypes {
		f, ok := fs[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("%s is a %v, want %v", name, f.GetType(), typ)
		}
		if f.GetHelp() == "" {
			t.Errorf("%s has no help", name)
		}
	}
	for _, name := range []string{"baton_checkpoint_age_seconds", "baton_info", "baton_host_cpu_usage_ratio", "baton_host_disk_free_bytes", "baton_process_resident_memory_bytes"} {
		if _, ok := fs[name]; ok {
			t.Errorf("%s present before it means anything", name)
		}
	}
	if got := len(fs["baton_commits_total"].GetMetric()); got != 3 {
		t.Errorf("baton_commits_total has %d results at start, want ok, dropped and failed", got)
	}
}

// TestEvents records events and compares the whole of baton's own series.
func TestEvents(t *testing.T) {
	t.Parallel()
	clock := newClock()
	m := New(WithClock(clock.Now))
	m.SetInfo("v0.1.0", "vast", "old-run")
	m.SetInfo("v0.2.0", "runpod", "llama-ft-7") // replaces, does not add
	m.SetLease(true)
	m.SetTransfersInFlight(16)
	m.SetTransfersInFlight(3)
	m.TrainerRestarted()
	m.TrainerRestarted()
	m.CommitDone(3*time.Second, 4<<20, 12<<20, ResultOK)
	m.CommitDone(time.Second, 1<<20, 0, ResultDropped)
	m.CommitDone(90*time.Second, 0, 0, ResultFailed)
	m.CommitDone(time.Second, 0, 0, "surprise") // counts as failed
	m.CommitDone(0, -5, -5, ResultFailed)       // negative byte counts are ignored
	clock.Advance(42 * time.Second)

	const want = `
# HELP baton_checkpoint_age_seconds Seconds since the newest successful commit of this baton, or before the first since the trainer started: the training work at risk if the host dies now. Absent until the trainer starts.
# TYPE baton_checkpoint_age_seconds gauge
baton_checkpoint_age_seconds 42
# HELP baton_commit_bytes_deduplicated_total Bytes of checkpoint files that commits did not upload because the store already had their chunks.
# TYPE baton_commit_bytes_deduplicated_total counter
baton_commit_bytes_deduplicated_total 1.2582912e+07
# HELP baton_commit_bytes_uploaded_total Bytes of checkpoint chunks uploaded by commits (whatever their result).
# TYPE baton_commit_bytes_uploaded_total counter
baton_commit_bytes_uploaded_total 5.24288e+06
# HELP baton_commits_total Checkpoint commits by result: ok, dropped (the trainer was still writing; tried again later) or failed.
# TYPE baton_commits_total counter
baton_commits_total{result="dropped"} 1
baton_commits_total{result="failed"} 3
baton_commits_total{result="ok"} 1
# HELP baton_info Always 1; its labels say which baton runs which run on which platform.
# TYPE baton_info gauge
baton_info{platform="runpod",run="llama-ft-7",version="v0.2.0"} 1
# HELP baton_lease_state 1 while this host holds the run's lease and may commit; 0 before it is taken, once it is lost, or after it is released.
# TYPE baton_lease_state gauge
baton_lease_state 1
# HELP baton_trainer_restarts_total Times the trainer was restarted after it failed.
# TYPE baton_trainer_restarts_total counter
baton_trainer_restarts_total 2
# HELP baton_transfers_in_flight Store requests (uploads and downloads) in flight now.
# TYPE baton_transfers_in_flight gauge
baton_transfers_in_flight 3
`
	names := []string{"baton_checkpoint_age_seconds", "baton_commit_bytes_deduplicated_total", "baton_commit_bytes_uploaded_total",
		"baton_commits_total", "baton_info", "baton_lease_state", "baton_trainer_restarts_total", "baton_transfers_in_flight"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}

	// Only the ok commit is in the histogram, from the le=4 bucket up.
	h := families(t, m)["baton_commit_duration_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 1 || h.GetSampleSum() != 3 {
		t.Errorf("histogram count %d sum %v, want the one ok commit of 3 s", h.GetSampleCount(), h.GetSampleSum())
	}
	for _, b := range h.GetBucket() {
		want := uint64(0)
		if b.GetUpperBound() >= 3 {
			want = 1
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v holds %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}

	// The age counts from the newest ok commit, at each scrape; a failed
	// commit does not reset it; losing the lease drops the gauge.
	clock.Advance(18 * time.Second)
	m.CommitDone(time.Second, 0, 0, ResultFailed)
	if got := age(t, m); got != 60 {
		t.Errorf("age %v after a failed commit, want 60", got)
	}
	m.CommitDone(time.Second, 0, 0, ResultOK)
	clock.Advance(5 * time.Second)
	if got := age(t, m); got != 5 {
		t.Errorf("age %v, want 5 after a new commit", got)
	}
	m.SetLease(false)
	if got := testutil.ToFloat64(m.lease); got != 0 {
		t.Errorf("lease %v after losing it", got)
	}
}

// TestAgeCountsFromTheTrainersStart: before the first commit, the age of
// the work at risk counts from the trainer's start, so that an alert fires
// for a run that never commits; a restart does not reset it, a commit does.
func TestAgeCountsFromTheTrainersStart(t *testing.T) {
	t.Parallel()
	clock := newClock()
	m := New(WithClock(clock.Now))
	m.TrainerStarted(clock.Now())
	clock.Advance(20 * time.Minute)
	m.TrainerStarted(clock.Now()) // a restart
	if got := age(t, m); got != 1200 {
		t.Errorf("age %v 20 minutes after the trainer started with no commit, want 1200", got)
	}
	m.CommitDone(time.Second, 0, 0, ResultOK)
	clock.Advance(time.Minute)
	if got := age(t, m); got != 60 {
		t.Errorf("age %v a minute after the first commit, want 60", got)
	}
}

func age(t *testing.T, m *Metrics) float64 {
	t.Helper()
	f, ok := families(t, m)["baton_checkpoint_age_seconds"]
	if !ok {
		t.Fatal("no baton_checkpoint_age_seconds")
	}
	return f.GetMetric()[0].GetGauge().GetValue()
}

// TestHostSeries feeds a reading and compares the host series; a part or
// disk that could not be read is left out rather than reported as zero.
func TestHostSeries(t *testing.T) {
	t.Parallel()
	m := New(WithClock(newClock().Now))
	r := host.Reading{
		CPUPercent: 37.5,
		Memory:     host.Memory{TotalBytes: 1000, UsedBytes: 400, AvailableBytes: 550},
		Disks: []host.Disk{
			{Role: "checkpoint", Path: "/workspace/ckpt", TotalBytes: 5000, FreeBytes: 1200, UsedBytes: 3800, InodesTotal: 90, InodesFree: 80},
			{Role: "workspace", Path: "/workspace", Error: "statfs /workspace: no such file or directory"},
		},
		Network: host.Network{RxBytes: 123456, TxBytes: 654321, RxBytesPerSecond: 10, TxBytesPerSecond: 20},
		Process: host.Process{PID: 1, CPUSeconds: 12.5, RSSBytes: 64 << 20},
	}
	m.SetHost(r)
	r.Disks[0].FreeBytes = 1 // the caller's slice is its own
	const want = `
# HELP baton_host_cpu_usage_ratio How busy all CPUs of the host were over the last sampling interval, 0 to 1.
# TYPE baton_host_cpu_usage_ratio gauge
baton_host_cpu_usage_ratio 0.375
# HELP baton_host_disk_free_bytes Free space, for an unprivileged writer, of the file system that holds a directory of the run.
# TYPE baton_host_disk_free_bytes gauge
baton_host_disk_free_bytes{path="/workspace/ckpt",role="checkpoint"} 1200
# HELP baton_host_disk_inodes_free Free inodes of the file system that holds a directory of the run (0 also where the file system does not count them).
# TYPE baton_host_disk_inodes_free gauge
baton_host_disk_inodes_free{path="/workspace/ckpt",role="checkpoint"} 80
# HELP baton_host_disk_total_bytes Size of the file system that holds a directory of the run, by role (checkpoint, workspace).
# TYPE baton_host_disk_total_bytes gauge
baton_host_disk_total_bytes{path="/workspace/ckpt",role="checkpoint"} 5000
# HELP baton_host_memory_available_bytes The host's memory available to programs without swapping.
# TYPE baton_host_memory_available_bytes gauge
baton_host_memory_available_bytes 550
# HELP baton_host_memory_total_bytes The host's memory.
# TYPE baton_host_memory_total_bytes gauge
baton_host_memory_total_bytes 1000
# HELP baton_host_memory_used_bytes The host's memory in use.
# TYPE baton_host_memory_used_bytes gauge
baton_host_memory_used_bytes 400
# HELP baton_host_network_receive_bytes_total Bytes received by every network interface but loopback.
# TYPE baton_host_network_receive_bytes_total counter
baton_host_network_receive_bytes_total 123456
# HELP baton_host_network_transmit_bytes_total Bytes sent by every network interface but loopback.
# TYPE baton_host_network_transmit_bytes_total counter
baton_host_network_transmit_bytes_total 654321
# HELP baton_process_cpu_seconds_total User and system CPU time used by baton's own process.
# TYPE baton_process_cpu_seconds_total counter
baton_process_cpu_seconds_total 12.5
# HELP baton_process_resident_memory_bytes Resident memory of baton's own process.
# TYPE baton_process_resident_memory_bytes gauge
baton_process_resident_memory_bytes 6.7108864e+07
`
	hostNames := []string{"baton_host_cpu_usage_ratio", "baton_host_disk_free_bytes", "baton_host_disk_inodes_free",
		"baton_host_disk_total_bytes", "baton_host_memory_available_bytes", "baton_host_memory_total_bytes",
		"baton_host_memory_used_bytes", "baton_host_network_receive_bytes_total", "baton_host_network_transmit_bytes_total",
		"baton_process_cpu_seconds_total", "baton_process_resident_memory_bytes"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), hostNames...); err != nil {
		t.Error(err)
	}

	// The next reading replaces the last: a part that failed disappears.
	m.SetHost(host.Reading{
		Memory: host.Memory{TotalBytes: 1000, UsedBytes: 500, AvailableBytes: 450},
		Errors: map[string]string{host.PartCPU: "no /proc/stat", host.PartNetwork: "x", host.PartProcess: "y"},
	})
	fs := families(t, m)
	for _, name := range []string{"baton_host_cpu_usage_ratio", "baton_host_network_receive_bytes_total", "baton_process_cpu_seconds_total", "baton_host_disk_free_bytes"} {
		if _, ok := fs[name]; ok {
			t.Errorf("%s reported from a part that failed", name)
		}
	}
	if got := fs["baton_host_memory_used_bytes"].GetMetric()[0].GetGauge().GetValue(); got != 500 {
		t.Errorf("memory used %v, want the newest reading's 500", got)
	}
}

// gpuCollector stands for the GPU collector another package provides.
type gpuCollector struct{ desc *prometheus.Desc }

func (c gpuCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c gpuCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 97, "0", "GPU-abc")
}

func TestRegister(t *testing.T) {
	t.Parallel()
	m := New()
	c := gpuCollector{prometheus.NewDesc("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", []string{"gpu", "UUID"}, nil)}
	if err := m.Register(c); err != nil {
		t.Fatal(err)
	}
	const want = `
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{UUID="GPU-abc",gpu="0"} 97
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "DCGM_FI_DEV_GPU_UTIL"); err != nil {
		t.Error(err)
	}
	if err := m.Register(c); err == nil {
		t.Error("registering the same collector twice: no error")
	}
	clash := gpuCollector{prometheus.NewDesc("baton_lease_state", "another", nil, nil)}
	if err := m.Register(clash); err == nil {
		t.Error("a collector that clashes with baton's series: no error")
	}
	// Two Metrics share nothing.
	if err := New().Register(c); err != nil {
		t.Errorf("a second Metrics is not independent: %v", err)
	}
}
