package checkpoint

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"

	bsync "github.com/batonrun/baton/sync"
	"github.com/zeebo/blake3"
	"golang.org/x/sync/errgroup"
)

// Restore writes checkpoint seq (0: the one latest.json names) into dir,
// replacing what dir held. It downloads the chunks in parallel into a
// staging directory beside dir, verifies every chunk's hash as it arrives and
// every file's hash once written, and only then swaps the staging directory
// in. On any failure (a bad hash, a full disk, the network) the staging
// directory is removed, dir is left as it was, and the error says what
// happened.
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
		if err := fh.Truncate(f.Size); err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
	}
	// Each file is verified and synced as soon as its last chunk is
	// written, on that chunk's worker, while other downloads go on.
	left := make([]atomic.Int64, len(m.Files))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Workers)
	for i, f := range m.Files {
		left[i].Store(int64(len(f.Chunks)))
		if len(f.Chunks) == 0 {
			g.Go(func() error { return verifyFile(handles[i], f) })
		}
		for c, hash := range f.Chunks {
			off, n := chunkSpan(f.Size, m.ChunkSize, c)
			g.Go(func() error {
				if err := gctx.Err(); err != nil {
					return err
				}
				data, err := r.fetchChunk(gctx, hash, n)
				if err != nil {
					return fmt.Errorf("%s: %w", f.Path, err)
				}
				if _, err := handles[i].WriteAt(data, off); err != nil {
					return fmt.Errorf("writing %s: %w", f.Path, err)
				}
				if left[i].Add(-1) == 0 {
					return verifyFile(handles[i], f)
				}
				return nil
			})
		}
	}
	return g.Wait()
}

// fetchChunk downloads one chunk of n bytes and checks its hash.
func (r *Repo) fetchChunk(ctx context.Context, hash string, n int64) ([]byte, error) {
	var data []byte
	err := r.retry.Do(ctx, func(ctx context.Context) error {
		rc, info, err := r.store.Get(ctx, chunkKey(hash), 0, -1)
		if err != nil {
			return err
		}
		defer rc.Close()
		if info.Size != n {
			return fmt.Errorf("%w: chunk %s is %d bytes, the manifest says %d", ErrBadManifest, hash, info.Size, n)
		}
		data = make([]byte, n)
		_, err = io.ReadFull(rc, data)
		if err != nil {
			return &bsync.Error{Op: "get", Key: chunkKey(hash), Kind: bsync.ErrTransient, Err: err}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if sum := blake3.Sum256(data); hex.EncodeToString(sum[:]) != hash {
		return nil, fmt.Errorf("chunk %s: content does not match its hash (corrupt store?)", hash)
	}
	return data, nil
}

// verifyFile re-reads a written file, checks its hash, and gives it its mode
// and mtime.
func verifyFile(fh *os.File, f File) error {
	h := blake3.New()
	if _, err := io.Copy(h, io.NewSectionReader(fh, 0, f.Size)); err != nil {
		return fmt.Errorf("verifying %s: %w", f.Path, err)
	}
	if got, _ := hex.DecodeString(f.Hash); !bytes.Equal(h.Sum(nil), got) {
		return fmt.Errorf("%s: restored content does not match the file hash", f.Path)
	}
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
