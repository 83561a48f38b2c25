// Package directio writes new files around the page cache where the file
// system allows it (O_DIRECT), for writers that must make what they wrote
// durable anyway: a restore that fsyncs every file before it is used.
//
// Through the page cache, every byte is first copied into a fresh page
// (on a VM, each new page can cost a fault in the hypervisor too) and then
// written again by the fsync at the end, after the download. Written
// direct, the blocks go from the caller's buffer to the device while other
// downloads go on, and the final fsync has only the file's metadata and its
// last partial block left to write. The cost: what was written is not in
// the page cache, so the first reader reads it from the device.
//
// Only whole, aligned blocks go direct: a write whose buffer or offset is
// not aligned to [Align], and the part of any write after its last whole
// block, go through the page cache as usual. Direct writes are used only on
// the local disk file systems a container's directories live on (ext4, xfs,
// btrfs, f2fs, and overlayfs above them): on NFS and FUSE mounts (a RunPod
// network volume, a bucket mounted as a directory) a direct write is a
// synchronous round trip that the client's write-back would have batched,
// and tmpfs has no disk to go around to. Everywhere else, and where the file
// system refuses O_DIRECT, every write goes through the page cache; the
// content is the same either way.
package directio

import (
	"errors"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Align is the alignment of direct writes: offsets, lengths and buffer
// addresses are multiples of it. 4096 covers the logical block size of
// every disk in use (512 or 4096 bytes).
const Align = 4096

// File is a new file open for writing, with a second, direct descriptor
// where the file system takes one.
type File struct {
	*os.File          // through the page cache: metadata, Sync, Close, unaligned writes
	direct   *os.File // O_DIRECT on the same file, or nil
}

// OpenFile opens path as os.OpenFile does, with flag (which must allow
// writing) and perm, and opens it a second time for direct writes where the
// file system allows it.
func OpenFile(path string, flag int, perm os.FileMode) (*File, error) {
	fh, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return nil, err
	}
	if !localDisk(fh) {
		return &File{File: fh}, nil
	}
	direct, err := os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		direct = nil // the file system does not do direct I/O: buffered it is
	}
	return &File{File: fh, direct: direct}, nil
}

// localDisk reports whether f is on a local disk file system that direct
// writes pay off on (see the package documentation).
func localDisk(f *os.File) bool {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return false
	}
	switch uint32(st.Type) {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.F2FS_SUPER_MAGIC, unix.OVERLAYFS_SUPER_MAGIC:
		return true
	}
	return false
}

// Direct reports whether f writes aligned blocks around the page cache.
func (f *File) Direct() bool { return f.direct != nil }

// WriteAt writes p at off, as os.File.WriteAt does: the whole, aligned
// blocks at its start direct where it can, the rest through the page cache.
// A direct write refused as a whole (EINVAL: a file system that takes
// O_DIRECT at open but wants a larger alignment) goes through the page
// cache instead. Safe for concurrent use on distinct ranges.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	n := 0
	if whole := len(p) &^ (Align - 1); f.direct != nil && whole > 0 && off%Align == 0 && Aligned(p) {
		var err error
		n, err = f.direct.WriteAt(p[:whole], off)
		if errors.Is(err, unix.EINVAL) && n == 0 {
			err = nil
		}
		if err != nil {
			return n, err
		}
	}
	m, err := f.File.WriteAt(p[n:], off+int64(n))
	return n + m, err
}

// Close closes both descriptors; the error is the first one's.
func (f *File) Close() error {
	err := f.File.Close()
	if f.direct != nil {
		if derr := f.direct.Close(); err == nil {
			err = derr
		}
	}
	return err
}

// Aligned reports whether p starts at a multiple of Align.
func Aligned(p []byte) bool {
	return len(p) == 0 || uintptr(unsafe.Pointer(unsafe.SliceData(p)))%Align == 0
}

// Buffer returns a buffer of n bytes that starts at a multiple of Align.
func Buffer(n int) []byte {
	b := make([]byte, n+Align)
	skip := int(-uintptr(unsafe.Pointer(unsafe.SliceData(b))) & (Align - 1))
	return b[skip : skip+n : skip+n]
}
