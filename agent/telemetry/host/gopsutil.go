package host

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/mem"
	psnet "github.com/shirou/gopsutil/v4/net"
	"github.com/shirou/gopsutil/v4/process"
)

// gopsutilSource reads the real host through gopsutil.
type gopsutilSource struct {
	pid int

	mu   sync.Mutex
	proc *process.Process // opened on first use
}

func newGopsutil(pid int) *gopsutilSource { return &gopsutilSource{pid: pid} }

func (g *gopsutilSource) cpu(ctx context.Context) (cpuTimes, error) {
	ts, err := cpu.TimesWithContext(ctx, false)
	if err != nil {
		return cpuTimes{}, fmt.Errorf("cpu times: %w", err)
	}
	if len(ts) == 0 {
		return cpuTimes{}, fmt.Errorf("cpu times: none reported")
	}
	t := ts[0]
	// As gopsutil's own percentage: guest time is already counted in user
	// time on Linux, and iowait is idle.
	total := t.User + t.System + t.Idle + t.Nice + t.Iowait + t.Irq + t.Softirq + t.Steal
	if runtime.GOOS != "linux" {
		total += t.Guest + t.GuestNice
	}
	return cpuTimes{busy: total - t.Idle - t.Iowait, total: total}, nil
}

func (g *gopsutilSource) memory(ctx context.Context) (Memory, error) {
	m, err := mem.VirtualMemoryWithContext(ctx)
	if err != nil {
		return Memory{}, fmt.Errorf("virtual memory: %w", err)
	}
	return Memory{TotalBytes: m.Total, UsedBytes: m.Used, AvailableBytes: m.Available}, nil
}

func (g *gopsutilSource) disk(ctx context.Context, path string) (Disk, error) {
	u, err := disk.UsageWithContext(ctx, path)
	if err != nil {
		return Disk{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	return Disk{TotalBytes: u.Total, FreeBytes: u.Free, UsedBytes: u.Used, InodesTotal: u.InodesTotal, InodesFree: u.InodesFree}, nil
}

func (g *gopsutilSource) net(ctx context.Context) (map[string]netCounters, error) {
	stats, err := psnet.IOCountersWithContext(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("network counters: %w", err)
	}
	loopback := map[string]bool{"lo": true}
	if ifs, err := net.Interfaces(); err == nil {
		for _, ifi := range ifs {
			loopback[ifi.Name] = ifi.Flags&net.FlagLoopback != 0
		}
	}
	out := make(map[string]netCounters, len(stats))
	for _, s := range stats {
		if loopback[s.Name] {
			continue
		}
		out[s.Name] = netCounters{rx: s.BytesRecv, tx: s.BytesSent}
	}
	return out, nil
}

func (g *gopsutilSource) process(ctx context.Context) (Process, error) {
	g.mu.Lock()
	p := g.proc
	if p == nil {
		var err error
		p, err = process.NewProcessWithContext(ctx, int32(g.pid))
		if err != nil {
			g.mu.Unlock()
			return Process{}, fmt.Errorf("process %d: %w", g.pid, err)
		}
		g.proc = p
	}
	g.mu.Unlock()
	out := Process{PID: g.pid}
	t, err := p.TimesWithContext(ctx)
	if err != nil {
		return out, fmt.Errorf("process %d cpu times: %w", g.pid, err)
	}
	out.CPUSeconds = t.User + t.System
	m, err := p.MemoryInfoWithContext(ctx)
	if err != nil {
		return out, fmt.Errorf("process %d memory: %w", g.pid, err)
	}
	out.RSSBytes = m.RSS
	return out, nil
}
