// Package durable makes what was written to a file system survive a crash.
package durable

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// SyncDir makes a directory's entries durable: a file created, renamed or
// removed in dir is there (or gone) after a crash once SyncDir returns nil.
// File systems that cannot fsync a directory (some FUSE ones) are taken at
// their word.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	d.Close()
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.ENOSYS) {
		return nil
	}
	return err
}
