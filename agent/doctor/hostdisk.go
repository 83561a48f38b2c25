package doctor

import (
	"context"
	"errors"

	"github.com/batonrun/baton/agent/telemetry/host"
)

// HostDisk is the DiskMeter of a real machine: it measures dir through
// package host (gopsutil's statfs), as baton run's telemetry does.
func HostDisk(ctx context.Context, dir string) (DiskSpace, error) {
	s, err := host.New(ctx, host.Options{Disks: map[string]string{"dir": dir}})
	if err != nil {
		return DiskSpace{}, err
	}
	r, _ := s.Sample(ctx) // only the disk matters here; its own error is in Disk.Error
	if len(r.Disks) != 1 {
		return DiskSpace{}, errors.New("host telemetry returned no disk")
	}
	d := r.Disks[0]
	if d.Error != "" {
		return DiskSpace{}, errors.New(d.Error)
	}
	return DiskSpace{TotalBytes: d.TotalBytes, FreeBytes: d.FreeBytes, InodesTotal: d.InodesTotal, InodesFree: d.InodesFree}, nil
}
