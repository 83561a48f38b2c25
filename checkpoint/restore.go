package checkpoint

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	gosync "sync"
	"sync/atomic"

	bsync "github.com/batonrun/baton/sync"
	"github.com/zeebo/blake3"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Restore writes checkpoint seq (0: the one latest.json names) into dir,
// replacing what dir held. It downloads the chunks in parallel into a
// staging directory beside dir, verifies every chunk's hash as it arrives,
// makes every file durable, and only then swaps the staging directory in.
// On any failure (a bad hash, a full disk, the network) the staging directory
// is removed, dir is left as it was, and the error says what happened.
//
// If dir is a symbolic link, the link itself is replaced by the restored
// directory; what it pointed to is left alone.
//
// The manifest is untrusted: it is validated (paths, sizes, counts) before
// anything is written, and files are only created inside the fresh staging
// directory, which holds no symbolic link.
func (r *Repo) Restore(ctx context.Context, seq int64, dir string) (*Manifest, error) {
	m, err := r.Manifest(ctx, seq)
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	parent, base := filepath.Dir(dir), filepath.Base(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	staging, err := os.MkdirTemp(parent, "."+base+".baton-restore-")
	if err == nil {
		err = os.Chmod(staging, 0o755) // MkdirTemp makes it 0700
	}
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(staging)
		}
	}()
	if err := r.download(ctx, m, staging); err != nil {
		return nil, fmt.Errorf("restore of run %s checkpoint %d: %w", r.opts.Run, m.Seq, err)
	}
	if err := swapDir(staging, dir); err != nil {
		return nil, fmt.Errorf("restore of run %s checkpoint %d: moving it into place: %w", r.opts.Run, m.Seq, err)
	}
	ok = true
	return m, nil
}

// download writes every file of m under staging and verifies it.
func (r *Repo) download(ctx context.Context, m *Manifest, staging string) error {
	handles := make([]*os.File, len(m.Files))
	defer func() {
		for _, f := range handles {
			if f != nil {
				f.Close()
			}
		}
	}()
	for i, f := range m.Files {
		p := filepath.Join(staging, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		fh, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
		if err != nil {
			return err
		}
		handles[i] = fh
		if err := allocate(fh, f.Size); err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
	}
	// Each chunk is checked against its name (its BLAKE3 hash) on the worker
	// that fetched it, so every byte is verified once and the hashing
	// spreads over the workers. A file is made durable on the worker that
	// wrote its last chunk, while other downloads go on.
	left := make([]atomic.Int64, len(m.Files))
	buffers := gosync.Pool{New: func() any { b := make([]byte, m.ChunkSize); return &b }}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Workers)
	for i, f := range m.Files {
		left[i].Store(int64(len(f.Chunks)))
		if len(f.Chunks) == 0 {
			g.Go(func() error { return finishFile(handles[i], f) })
		}
		for c, hash := range f.Chunks {
			off, n := chunkSpan(f.Size, m.ChunkSize, c)
			g.Go(func() error {
				if err := gctx.Err(); err != nil {
					return err
				}
				buf := buffers.Get().(*[]byte)
				defer buffers.Put(buf)
				data := (*buf)[:n]
				if err := r.fetchChunk(gctx, hash, data); err != nil {
					return fmt.Errorf("%s: %w", f.Path, err)
				}
				if _, err := handles[i].WriteAt(data, off); err != nil {
					return fmt.Errorf("writing %s: %w", f.Path, err)
				}
				if left[i].Add(-1) == 0 {
					return finishFile(handles[i], f)
				}
				return nil
			})
		}
	}
	return g.Wait()
}

// allocate gives a new file its size. Where the file system can, it
// reserves the blocks up front (fallocate): a disk too small fails before
// anything is downloaded, and the parallel writes land in allocated extents
// instead of holes. Elsewhere the file is extended sparse.
func allocate(fh *os.File, size int64) error {
	if size == 0 {
		return nil
	}
	err := unix.Fallocate(int(fh.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return fh.Truncate(size)
	}
	return err
}

// fetchChunk downloads the chunk named hash into data, which has the
// chunk's length, and checks its content against its name.
func (r *Repo) fetchChunk(ctx context.Context, hash string, data []byte) error {
	n := int64(len(data))
	err := r.retry.Do(ctx, func(ctx context.Context) error {
		rc, info, err := r.store.Get(ctx, chunkKey(hash), 0, -1)
		if err != nil {
			return err
		}
		defer rc.Close()
		if info.Size != n {
			return fmt.Errorf("%w: chunk %s is %d bytes, the manifest says %d", ErrBadManifest, hash, info.Size, n)
		}
		if _, err := io.ReadFull(rc, data); err != nil {
			return &bsync.Error{Op: "get", Key: chunkKey(hash), Kind: bsync.ErrTransient, Err: err}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if sum := blake3.Sum256(data); hex.EncodeToString(sum[:]) != hash {
		return fmt.Errorf("chunk %s: content does not match its hash (corrupt store?)", hash)
	}
	return nil
}

// finishFile makes a fully written and verified file durable and gives it
// its mode and mtime.
func finishFile(fh *os.File, f File) error {
	if err := fh.Sync(); err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	if err := fh.Chmod(f.Mode); err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	return os.Chtimes(fh.Name(), f.MTime, f.MTime)
}

// swapDir puts staging where dir is: dir, if it exists, is first renamed
// aside, then removed once staging is in place.
func swapDir(staging, dir string) error {
	var suffix [4]byte
	rand.Read(suffix[:])
	old := dir + ".baton-old-" + hex.EncodeToString(suffix[:])
	hadOld := true
	if err := os.Rename(dir, old); errors.Is(err, os.ErrNotExist) {
		hadOld = false
	} else if err != nil {
		return err
	}
	if err := os.Rename(staging, dir); err != nil {
		if hadOld {
			os.Rename(old, dir)
		}
		return err
	}
	if d, err := os.Open(filepath.Dir(dir)); err == nil {
		d.Sync()
		d.Close()
	}
	if hadOld {
		return os.RemoveAll(old)
	}
	return nil
}
