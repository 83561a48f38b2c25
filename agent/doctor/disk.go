package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/agent/platform"
	"github.com/batonrun/baton/internal/units"
)

// DiskSpace is the size of one file system, in bytes and inodes.
type DiskSpace struct {
	// TotalBytes is the file system's size.
	TotalBytes uint64
	// FreeBytes is the space an unprivileged writer can still use.
	FreeBytes uint64
	// InodesTotal and InodesFree count inodes; both are 0 on file systems
	// that do not report them.
	InodesTotal, InodesFree uint64
}

// DiskMeter measures the file system that holds dir, which exists.
type DiskMeter func(ctx context.Context, dir string) (DiskSpace, error)

// DiskFacts is one disk the run writes to.
type DiskFacts struct {
	// Role is what the run keeps there: "checkpoint" (the checkpoint
	// directory) or "workspace" (the platform's persistent directory, else
	// the working directory).
	Role string `json:"role"`
	// Dir is the directory of that role, absolute.
	Dir string `json:"dir"`
	// Measured is the directory that was measured: Dir, or its nearest
	// existing parent when Dir does not exist yet.
	Measured string `json:"measured"`
	// TotalBytes and FreeBytes are the file system's size and the space an
	// unprivileged writer can still use.
	TotalBytes uint64 `json:"total_bytes"`
	FreeBytes  uint64 `json:"free_bytes"`
	// MinFreeBytes is the threshold below which the check warns
	// (--min-free-disk).
	MinFreeBytes uint64 `json:"min_free_bytes"`
	// Error says why the disk could not be measured; the sizes are then 0.
	Error string `json:"error,omitempty"`
}

// checkDisks measures the disk of the checkpoint directory and that of the
// workspace. A disk short of space, or one that cannot be measured, warns:
// baton can start, but a checkpoint that does not fit is lost.
func checkDisks(ctx context.Context, o Options, desc platform.Description) ([]Check, []DiskFacts) {
	meter := o.Disk
	if meter == nil {
		meter = HostDisk
	}
	minFree := uint64(max(o.Config.MinFreeDisk, 0))
	workspace := desc.PersistentDir
	if workspace == "" {
		workspace = absDir(o.WorkDir, ".")
	}
	roles := []struct{ role, dir string }{
		{"checkpoint", absDir(o.WorkDir, o.Config.CheckpointDir)},
		{"workspace", workspace},
	}
	var checks []Check
	var facts []DiskFacts
	for _, r := range roles {
		start := o.Now()
		c, f := checkDisk(ctx, meter, r.role, r.dir, minFree)
		c.DurationMS = millis(o.Now().Sub(start))
		checks, facts = append(checks, c), append(facts, f)
	}
	return checks, facts
}

func checkDisk(ctx context.Context, meter DiskMeter, role, dir string, minFree uint64) (Check, DiskFacts) {
	f := DiskFacts{Role: role, Dir: dir, MinFreeBytes: minFree}
	c := Check{Name: "disk." + role, Status: OK}
	label := dir
	if role == "checkpoint" {
		label = "checkpoint dir " + dir
	}
	measured, err := existingParent(dir)
	if err == nil {
		f.Measured = measured
		if measured != dir {
			label += " (not created yet; measured " + measured + ")"
		}
		var space DiskSpace
		space, err = measure(ctx, meter, measured)
		f.TotalBytes, f.FreeBytes = space.TotalBytes, space.FreeBytes
		if err == nil && space.InodesTotal > 0 && space.InodesFree == 0 {
			c.Status = Warn
			c.Reason = fmt.Sprintf("%s: no free inode left: no new file can be created", label)
			c.Hint = "delete files on that disk, or move --checkpoint-dir to another one"
			return c, f
		}
	}
	if err != nil {
		f.Error = err.Error()
		c.Status = Warn
		c.Reason = fmt.Sprintf("%s: cannot measure the disk: %v", label, err)
		c.Hint = "check that the directory is reachable; baton warns about a full disk only when it can measure it"
		return c, f
	}
	c.Reason = fmt.Sprintf("%s: %s free of %s", label, units.Bytes(int64(f.FreeBytes)), units.Bytes(int64(f.TotalBytes)))
	if f.FreeBytes < minFree {
		c.Status = Warn
		c.Reason += fmt.Sprintf(", below --min-free-disk (%s)", config.ByteSize(minFree))
		c.Hint = "free space on that disk or point --checkpoint-dir at a bigger one: a checkpoint that does not fit is lost"
	}
	return c, f
}

// diskTimeout is DiskTimeout; tests shorten it.
var diskTimeout = DiskTimeout

// measure runs meter under DiskTimeout: a hung network mount must not hang
// doctor.
func measure(ctx context.Context, meter DiskMeter, dir string) (DiskSpace, error) {
	ctx, cancel := context.WithTimeout(ctx, diskTimeout)
	defer cancel()
	type result struct {
		space DiskSpace
		err   error
	}
	done := make(chan result, 1)
	go func() {
		s, err := meter(ctx, dir)
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		return r.space, r.err
	case <-ctx.Done():
		return DiskSpace{}, fmt.Errorf("no answer in %s: %w", diskTimeout, ctx.Err())
	}
}

// existingParent returns dir if it exists, else its nearest parent that
// does.
func existingParent(dir string) (string, error) {
	for d := dir; ; {
		_, err := os.Stat(d)
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", err
		}
		d = parent
	}
}
