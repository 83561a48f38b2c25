// Package host samples the health of the machine baton runs on: CPU and
// memory use, the free space of the disks a run writes to, network
// throughput, and baton's own CPU time and memory. It reads them through
// gopsutil, so the numbers are what the kernel reports to this container
// (inside a container, CPU and memory are usually the whole host's).
//
// A full disk is the commonest way a checkpoint dies, so each disk the run
// depends on is named by its role ("checkpoint", "workspace") and CheckDisks
// turns a disk short of space into a Problem.
package host

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/batonrun/baton/internal/units"
)

// Reading is one sample of the host. Rates and the CPU percentage cover the
// interval since the previous sample (or since New, for the first one).
type Reading struct {
	// Time is when the sample was taken, from Options.Clock.
	Time time.Time `json:"time"`
	// IntervalSeconds is the time since the previous sample that the rates
	// and CPUPercent cover; 0 when the clock did not advance.
	IntervalSeconds float64 `json:"interval_seconds"`
	// CPUPercent is how busy all CPUs together were over the interval, from
	// 0 to 100.
	CPUPercent float64 `json:"cpu_percent"`
	// Memory is the machine's memory.
	Memory Memory `json:"memory"`
	// Disks are the disks of Options.Disks, sorted by role.
	Disks []Disk `json:"disks"`
	// Network sums every interface but loopback.
	Network Network `json:"network"`
	// Process is baton's own process.
	Process Process `json:"process"`
	// Errors says, by part ("cpu", "memory", "network", "process"), why a
	// part could not be read; that part's numbers are then zero and not to
	// be trusted. A disk's error is in Disk.Error.
	Errors map[string]string `json:"errors,omitempty"`
}

// The parts of a Reading that Reading.Errors names.
const (
	PartCPU     = "cpu"
	PartMemory  = "memory"
	PartNetwork = "network"
	PartProcess = "process"
)

// OK reports whether part (PartCPU, ...) was read.
func (r Reading) OK(part string) bool {
	_, failed := r.Errors[part]
	return !failed
}

// RecordType names a Reading in the run's telemetry records ("host").
func (Reading) RecordType() string { return "host" }

// Memory is the machine's memory, in bytes.
type Memory struct {
	TotalBytes     uint64 `json:"total_bytes"`
	UsedBytes      uint64 `json:"used_bytes"`
	AvailableBytes uint64 `json:"available_bytes"`
}

// Disk is the file system that holds one of the run's directories.
type Disk struct {
	// Role is what the run keeps there: "checkpoint", "workspace", ...
	Role string `json:"role"`
	// Path is the directory that was measured.
	Path string `json:"path"`
	// TotalBytes is the file system's size.
	TotalBytes uint64 `json:"total_bytes"`
	// FreeBytes is the space an unprivileged writer can still use.
	FreeBytes uint64 `json:"free_bytes"`
	// UsedBytes is the space in use.
	UsedBytes uint64 `json:"used_bytes"`
	// InodesTotal and InodesFree count inodes; both are 0 on file systems
	// that do not report them.
	InodesTotal uint64 `json:"inodes_total"`
	InodesFree  uint64 `json:"inodes_free"`
	// Error, when not empty, says why the disk could not be measured; the
	// numbers are then zero.
	Error string `json:"error,omitempty"`
}

// Network is the traffic of every interface but loopback.
type Network struct {
	// RxBytes and TxBytes are the bytes received and sent since the
	// interfaces came up (they drop when an interface goes away).
	RxBytes uint64 `json:"rx_bytes"`
	TxBytes uint64 `json:"tx_bytes"`
	// RxBytesPerSecond and TxBytesPerSecond are the rates over the interval,
	// counting only interfaces seen at both ends of it.
	RxBytesPerSecond float64 `json:"rx_bytes_per_second"`
	TxBytesPerSecond float64 `json:"tx_bytes_per_second"`
}

// Process is baton's own process.
type Process struct {
	PID int `json:"pid"`
	// CPUSeconds is the user and system CPU time it has used so far.
	CPUSeconds float64 `json:"cpu_seconds"`
	// RSSBytes is its resident memory.
	RSSBytes uint64 `json:"rss_bytes"`
}

// Options configures a Sampler.
type Options struct {
	// Disks maps a role ("checkpoint", "workspace") to a directory on the
	// disk that holds it.
	Disks map[string]string
	// Clock returns the current time; nil means time.Now. Rates are
	// computed from its readings.
	Clock func() time.Time
}

// Sampler takes Readings. It keeps the previous sample's counters to compute
// rates, so one Sampler serves one stream of samples. It is safe for
// concurrent use.
type Sampler struct {
	src   source
	clock func() time.Time
	disks []Disk // role and path only, sorted by role

	mu   sync.Mutex
	prev counters
}

// counters are the cumulative values that rates are computed from.
type counters struct {
	at    time.Time
	cpu   cpuTimes
	cpuOK bool
	net   map[string]netCounters
	netOK bool
}

// cpuTimes are the busy and total CPU seconds of all CPUs since boot.
type cpuTimes struct{ busy, total float64 }

// netCounters are one interface's cumulative byte counts.
type netCounters struct{ rx, tx uint64 }

// source reads the host; the real one goes through gopsutil, tests supply
// their own to check the arithmetic.
type source interface {
	cpu(ctx context.Context) (cpuTimes, error)
	memory(ctx context.Context) (Memory, error)
	disk(ctx context.Context, path string) (Disk, error)
	// net returns the counters of every interface but loopback, by name.
	net(ctx context.Context) (map[string]netCounters, error)
	process(ctx context.Context) (Process, error)
}

// New returns a Sampler of this machine and reads the counters that the
// first Sample's rates start from. It fails only on bad options.
func New(ctx context.Context, opts Options) (*Sampler, error) {
	return newSampler(ctx, opts, newGopsutil(os.Getpid()))
}

func newSampler(ctx context.Context, opts Options, src source) (*Sampler, error) {
	s := &Sampler{src: src, clock: opts.Clock}
	if s.clock == nil {
		s.clock = time.Now
	}
	for role, path := range opts.Disks {
		if role == "" || path == "" {
			return nil, fmt.Errorf("host telemetry: disk role %q with path %q: want both", role, path)
		}
		s.disks = append(s.disks, Disk{Role: role, Path: path})
	}
	slices.SortFunc(s.disks, func(a, b Disk) int { return cmp.Compare(a.Role, b.Role) })
	s.prev = s.readCounters(ctx)
	return s, nil
}

// readCounters reads the cumulative counters; a part that fails is marked
// so that the next rate skips it.
func (s *Sampler) readCounters(ctx context.Context) counters {
	c := counters{at: s.clock()}
	var err error
	c.cpu, err = s.src.cpu(ctx)
	c.cpuOK = err == nil
	c.net, err = s.src.net(ctx)
	c.netOK = err == nil
	return c
}

// Sample reads the host. It always returns a Reading with every part it could
// read; the error, when not nil, joins one error per part that failed (a
// missing disk path fails that disk only, whose Disk.Error says why too).
func (s *Sampler) Sample(ctx context.Context) (Reading, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return Reading{}, fmt.Errorf("host telemetry: %w", err)
	}
	var errs []error
	now := s.clock()
	r := Reading{Time: now}
	fail := func(part string, err error) {
		errs = append(errs, fmt.Errorf("host telemetry: %s: %w", part, err))
		if r.Errors == nil {
			r.Errors = map[string]string{}
		}
		r.Errors[part] = err.Error()
	}

	cpu, cpuErr := s.src.cpu(ctx)
	nets, netErr := s.src.net(ctx)
	prev := s.prev
	s.prev = counters{at: now, cpu: cpu, cpuOK: cpuErr == nil, net: nets, netOK: netErr == nil}

	elapsed := now.Sub(prev.at).Seconds()
	if elapsed > 0 {
		r.IntervalSeconds = elapsed
	}
	if cpuErr != nil {
		fail(PartCPU, cpuErr)
	} else if prev.cpuOK {
		r.CPUPercent = cpuPercent(prev.cpu, cpu)
	}
	if netErr != nil {
		fail(PartNetwork, netErr)
	} else {
		for _, c := range nets {
			r.Network.RxBytes += c.rx
			r.Network.TxBytes += c.tx
		}
		if prev.netOK && elapsed > 0 {
			var drx, dtx uint64
			for name, c := range nets {
				p, ok := prev.net[name]
				if !ok {
					continue
				}
				drx += delta(p.rx, c.rx)
				dtx += delta(p.tx, c.tx)
			}
			r.Network.RxBytesPerSecond = float64(drx) / elapsed
			r.Network.TxBytesPerSecond = float64(dtx) / elapsed
		}
	}

	var err error
	if r.Memory, err = s.src.memory(ctx); err != nil {
		fail(PartMemory, err)
	}
	for _, d := range s.disks {
		got, err := s.src.disk(ctx, d.Path)
		if err != nil {
			errs = append(errs, fmt.Errorf("host telemetry: disk %q (%s): %w", d.Role, d.Path, err))
			got = Disk{Error: err.Error()}
		}
		got.Role, got.Path = d.Role, d.Path
		r.Disks = append(r.Disks, got)
	}
	if r.Process, err = s.src.process(ctx); err != nil {
		fail(PartProcess, err)
	}
	return r, errors.Join(errs...)
}

// cpuPercent is how busy the CPUs were between two readings, 0 to 100.
func cpuPercent(a, b cpuTimes) float64 {
	total := b.total - a.total
	busy := b.busy - a.busy
	if total <= 0 || busy <= 0 {
		return 0
	}
	return min(100, 100*busy/total)
}

// delta is how much a counter grew; a counter that went back (an interface
// reset) counts from zero.
func delta(a, b uint64) uint64 {
	if b < a {
		return b
	}
	return b - a
}

// Problem is a condition of the host that puts the run at risk.
type Problem struct {
	// Kind is ProblemDiskLow or ProblemNoInodes.
	Kind string `json:"kind"`
	// Role and Path name the disk.
	Role string `json:"role"`
	Path string `json:"path"`
	// FreeBytes is the free space found, MinFreeBytes the threshold.
	FreeBytes    uint64 `json:"free_bytes"`
	MinFreeBytes uint64 `json:"min_free_bytes"`
}

// The kinds of Problem.
const (
	// ProblemDiskLow: the disk has less free space than the threshold.
	ProblemDiskLow = "disk_low"
	// ProblemNoInodes: the disk has no free inode left, so no new file can
	// be created however much space is free.
	ProblemNoInodes = "no_inodes"
)

// String says what is wrong, for a log line.
func (p Problem) String() string {
	switch p.Kind {
	case ProblemNoInodes:
		return fmt.Sprintf("%s disk %s has no free inode left", p.Role, p.Path)
	default:
		return fmt.Sprintf("%s disk %s has %s free, below the minimum of %s", p.Role, p.Path, units.Bytes(int64(p.FreeBytes)), units.Bytes(int64(p.MinFreeBytes)))
	}
}

// CheckDisks returns a Problem for every disk of r with less than minFree
// bytes free, or no free inode. Disks that could not be measured
// (Disk.Error set) are skipped: Sample has already reported them.
func CheckDisks(r Reading, minFree uint64) []Problem {
	var out []Problem
	for _, d := range r.Disks {
		if d.Error != "" {
			continue
		}
		p := Problem{Role: d.Role, Path: d.Path, FreeBytes: d.FreeBytes, MinFreeBytes: minFree}
		switch {
		case d.FreeBytes < minFree:
			p.Kind = ProblemDiskLow
		case d.InodesTotal > 0 && d.InodesFree == 0:
			p.Kind = ProblemNoInodes
		default:
			continue
		}
		out = append(out, p)
	}
	return out
}
