// Package metrics is baton's Prometheus endpoint: baton's own series (the
// age of the newest checkpoint, commit durations and bytes, restarts, the
// lease), the host's (from agent/telemetry/host), and whatever collectors
// are plugged in with Register (the GPU collector, which emits
// dcgm-exporter's DCGM_FI_DEV_* series so that existing dashboards work).
//
// Every Metrics holds its own registry; nothing is registered globally. The
// endpoint listens on loopback only unless a bearer token guards it:
// RunPod's proxy makes every HTTP port of a pod public. docs/telemetry.md
// lists the series.
package metrics

import (
	"fmt"
	"maps"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/batonrun/baton/agent/telemetry/host"
)

// The results of a commit, for CommitDone and the result label of
// baton_commits_total.
const (
	// ResultOK: the checkpoint was committed.
	ResultOK = "ok"
	// ResultDropped: the commit was given up because the trainer was still
	// writing; it is tried again later.
	ResultDropped = "dropped"
	// ResultFailed: the commit failed (the store, the lease, ...).
	ResultFailed = "failed"
)

// commitBuckets are the upper bounds of the commit-duration histogram, in
// seconds: a quarter second to about 70 minutes.
var commitBuckets = prometheus.ExponentialBuckets(0.25, 2, 15)

// Metrics holds baton's series and the registry that serves them. Its
// methods are safe for concurrent use.
type Metrics struct {
	reg   *prometheus.Registry
	clock func() time.Time

	commitSeconds prometheus.Histogram
	uploaded      prometheus.Counter
	deduped       prometheus.Counter
	commits       *prometheus.CounterVec
	inFlight      prometheus.Gauge
	restarts      prometheus.Counter
	fallbacks     prometheus.Counter
	forks         prometheus.Counter
	lease         prometheus.Gauge
	info          *prometheus.GaugeVec

	mu         sync.Mutex
	lastCommit time.Time    // zero until the first successful commit, or the trainer's start
	host       host.Reading // the latest reading
	hasHost    bool
}

// Option changes how New builds a Metrics.
type Option func(*Metrics)

// WithClock sets the clock that baton_checkpoint_age_seconds is computed
// from at each scrape; the default is time.Now.
func WithClock(now func() time.Time) Option { return func(m *Metrics) { m.clock = now } }

// New returns a Metrics with baton's series registered in a registry of its
// own.
func New(opts ...Option) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), clock: time.Now}
	for _, o := range opts {
		o(m)
	}
	m.commitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "baton_commit_duration_seconds",
		Help:    "How long each successful checkpoint commit took, from scan to moving latest.json.",
		Buckets: commitBuckets,
	})
	m.uploaded = newCounter("baton_commit_bytes_uploaded_total",
		"Bytes of checkpoint chunks uploaded by commits (whatever their result).")
	m.deduped = newCounter("baton_commit_bytes_deduplicated_total",
		"Bytes of checkpoint files that commits did not upload because the store already had their chunks.")
	m.commits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "baton_commits_total",
		Help: "Checkpoint commits by result: ok, dropped (the trainer was still writing; tried again later) or failed.",
	}, []string{"result"})
	for _, r := range []string{ResultOK, ResultDropped, ResultFailed} {
		m.commits.WithLabelValues(r) // present at zero from the start
	}
	m.inFlight = newGauge("baton_transfers_in_flight",
		"Store requests (uploads and downloads) in flight now.")
	m.restarts = newCounter("baton_trainer_restarts_total",
		"Times the trainer was restarted after it failed.")
	m.fallbacks = newCounter("baton_restore_fallbacks_total",
		"Checkpoints that could not be restored because they are damaged in the store, so that an older one was tried.")
	m.forks = newCounter("baton_checkpoint_forks_total",
		"Local checkpoint directories set aside at start because both they and the store had moved on (see docs/run.md).")
	m.lease = newGauge("baton_lease_state",
		"1 while this host holds the run's lease and may commit; 0 before it is taken, once it is lost, or after it is released.")
	m.info = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "baton_info",
		Help: "Always 1; its labels say which baton runs which run on which platform.",
	}, []string{"version", "platform", "run"})
	m.reg.MustRegister(m.commitSeconds, m.uploaded, m.deduped, m.commits, m.inFlight, m.restarts, m.fallbacks, m.forks, m.lease, m.info,
		stateCollector{m})
	return m
}

// newCounter and newGauge make a series with no labels.
func newCounter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func newGauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

// RestoreFellBack counts a checkpoint that could not be restored (damaged
// in the store), so that an older one was tried.
func (m *Metrics) RestoreFellBack() { m.fallbacks.Inc() }

// ForkSetAside counts a local checkpoint directory set aside at start.
func (m *Metrics) ForkSetAside() { m.forks.Inc() }

// TrainerStarted starts baton_checkpoint_age_seconds at t if nothing was
// committed yet: the work at risk grows from the trainer's start, and an
// alert on the age fires for a run that never commits.
func (m *Metrics) TrainerStarted(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lastCommit.IsZero() {
		m.lastCommit = t
	}
}

// Registry returns the registry the endpoint serves, for tests and for
// gathering without HTTP.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Register adds a collector, such as the GPU collector, to the endpoint.
// It fails if the collector's series clash with those already registered.
func (m *Metrics) Register(c prometheus.Collector) error {
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("metrics: register collector: %w", err)
	}
	return nil
}

// CommitDone records one commit attempt that took d, uploaded bytes of new
// chunks and found deduped bytes already in the store. result is ResultOK,
// ResultDropped or ResultFailed; anything else counts as ResultFailed. Only
// an ok commit enters the duration histogram and resets
// baton_checkpoint_age_seconds; the bytes count whatever the result, since
// they did cross the network.
func (m *Metrics) CommitDone(d time.Duration, uploaded, deduped int64, result string) {
	switch result {
	case ResultOK, ResultDropped, ResultFailed:
	default:
		result = ResultFailed
	}
	m.commits.WithLabelValues(result).Inc()
	if uploaded > 0 {
		m.uploaded.Add(float64(uploaded))
	}
	if deduped > 0 {
		m.deduped.Add(float64(deduped))
	}
	if result != ResultOK {
		return
	}
	m.commitSeconds.Observe(d.Seconds())
	now := m.clock()
	m.mu.Lock()
	m.lastCommit = now
	m.mu.Unlock()
}

// SetTransfersInFlight sets how many store requests are in flight.
func (m *Metrics) SetTransfersInFlight(n int) { m.inFlight.Set(float64(n)) }

// TrainerRestarted counts one restart of the trainer.
func (m *Metrics) TrainerRestarted() { m.restarts.Inc() }

// SetLease records whether this host holds the run's lease.
func (m *Metrics) SetLease(held bool) {
	v := 0.0
	if held {
		v = 1
	}
	m.lease.Set(v)
}

// SetInfo sets the labels of baton_info, replacing earlier ones.
func (m *Metrics) SetInfo(version, platform, run string) {
	m.info.Reset()
	m.info.WithLabelValues(version, platform, run).Set(1)
}

// SetHost makes r the reading that the host series report, until the next
// call. Before the first call there are no host series.
func (m *Metrics) SetHost(r host.Reading) {
	r.Disks = append([]host.Disk(nil), r.Disks...) // the caller may reuse its slice and map
	r.Errors = maps.Clone(r.Errors)
	m.mu.Lock()
	m.host, m.hasHost = r, true
	m.mu.Unlock()
}

// The series computed at scrape time from the Metrics' state.
var (
	checkpointAgeDesc = prometheus.NewDesc("baton_checkpoint_age_seconds",
		"Seconds since the newest successful commit of this baton, or before the first since the trainer started: the training work at risk if the host dies now. Absent until the trainer starts.", nil, nil)
	cpuDesc = prometheus.NewDesc("baton_host_cpu_usage_ratio",
		"How busy all CPUs of the host were over the last sampling interval, 0 to 1.", nil, nil)
	memTotalDesc = prometheus.NewDesc("baton_host_memory_total_bytes",
		"The host's memory.", nil, nil)
	memUsedDesc = prometheus.NewDesc("baton_host_memory_used_bytes",
		"The host's memory in use.", nil, nil)
	memAvailDesc = prometheus.NewDesc("baton_host_memory_available_bytes",
		"The host's memory available to programs without swapping.", nil, nil)
	diskTotalDesc = prometheus.NewDesc("baton_host_disk_total_bytes",
		"Size of the file system that holds a directory of the run, by role (checkpoint, workspace).", []string{"role", "path"}, nil)
	diskFreeDesc = prometheus.NewDesc("baton_host_disk_free_bytes",
		"Free space, for an unprivileged writer, of the file system that holds a directory of the run.", []string{"role", "path"}, nil)
	diskInodesFreeDesc = prometheus.NewDesc("baton_host_disk_inodes_free",
		"Free inodes of the file system that holds a directory of the run (0 also where the file system does not count them).", []string{"role", "path"}, nil)
	netRxDesc = prometheus.NewDesc("baton_host_network_receive_bytes_total",
		"Bytes received by every network interface but loopback.", nil, nil)
	netTxDesc = prometheus.NewDesc("baton_host_network_transmit_bytes_total",
		"Bytes sent by every network interface but loopback.", nil, nil)
	procCPUDesc = prometheus.NewDesc("baton_process_cpu_seconds_total",
		"User and system CPU time used by baton's own process.", nil, nil)
	procRSSDesc = prometheus.NewDesc("baton_process_resident_memory_bytes",
		"Resident memory of baton's own process.", nil, nil)
)

// stateCollector emits the series computed at scrape time.
type stateCollector struct{ m *Metrics }

// Describe sends the descriptors of every series Collect may emit.
func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{checkpointAgeDesc, cpuDesc, memTotalDesc, memUsedDesc, memAvailDesc,
		diskTotalDesc, diskFreeDesc, diskInodesFreeDesc, netRxDesc, netTxDesc, procCPUDesc, procRSSDesc} {
		ch <- d
	}
}

// Collect emits the checkpoint age and the latest host reading.
func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.m.clock()
	c.m.mu.Lock()
	last, r, hasHost := c.m.lastCommit, c.m.host, c.m.hasHost
	c.m.mu.Unlock()

	if !last.IsZero() {
		ch <- prometheus.MustNewConstMetric(checkpointAgeDesc, prometheus.GaugeValue, math.Max(0, now.Sub(last).Seconds()))
	}
	if !hasHost {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	// A part that could not be read is left out: no number beats a false
	// zero (a false drop of a counter would read as a reset).
	if r.OK(host.PartCPU) {
		gauge(cpuDesc, r.CPUPercent/100)
	}
	if r.OK(host.PartMemory) {
		gauge(memTotalDesc, float64(r.Memory.TotalBytes))
		gauge(memUsedDesc, float64(r.Memory.UsedBytes))
		gauge(memAvailDesc, float64(r.Memory.AvailableBytes))
	}
	for _, d := range r.Disks {
		if d.Error != "" {
			continue
		}
		gauge(diskTotalDesc, float64(d.TotalBytes), d.Role, d.Path)
		gauge(diskFreeDesc, float64(d.FreeBytes), d.Role, d.Path)
		gauge(diskInodesFreeDesc, float64(d.InodesFree), d.Role, d.Path)
	}
	if r.OK(host.PartNetwork) {
		counter(netRxDesc, float64(r.Network.RxBytes))
		counter(netTxDesc, float64(r.Network.TxBytes))
	}
	if r.OK(host.PartProcess) {
		counter(procCPUDesc, r.Process.CPUSeconds)
		gauge(procRSSDesc, float64(r.Process.RSSBytes))
	}
}
