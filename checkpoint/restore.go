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
	gosync "sync"
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
	// Each file is finished (whole-file hash, fsync, mode, mtime) as soon
	// as its last chunk is written, on that chunk's worker, while other
	// downloads go on. The whole-file hash is computed from the chunks as
	// they arrive in order; only a file whose chunks arrived too far out of
	// order is read back to be hashed.
	left := make([]atomic.Int64, len(m.Files))
	hashers := make([]*orderedHasher, len(m.Files))
	buffers := gosync.Pool{New: func() any { b := make([]byte, m.ChunkSize); return &b }}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Workers)
	for i, f := range m.Files {
		left[i].Store(int64(len(f.Chunks)))
		hashers[i] = newOrderedHasher()
		if len(f.Chunks) == 0 {
			g.Go(func() error { return finishFile(handles[i], f, m.ChunkSize, hashers[i]) })
		}
		for c, hash := range f.Chunks {
			off, n := chunkSpan(f.Size, m.ChunkSize, c)
			g.Go(func() error {
				if err := gctx.Err(); err != nil {
					return err
				}
				buf := buffers.Get().(*[]byte)
				data := (*buf)[:n]
				if err := r.fetchChunk(gctx, hash, data); err != nil {
					buffers.Put(buf)
					return fmt.Errorf("%s: %w", f.Path, err)
				}
				if _, err := handles[i].WriteAt(data, off); err != nil {
					buffers.Put(buf)
					return fmt.Errorf("writing %s: %w", f.Path, err)
				}
				for _, done := range hashers[i].add(c, buf, n) {
					buffers.Put(done)
				}
				if left[i].Add(-1) == 0 {
					return finishFile(handles[i], f, m.ChunkSize, hashers[i])
				}
				return nil
			})
		}
	}
	return g.Wait()
}

// maxPending is how many out-of-order chunks of one file an orderedHasher
// holds before it gives up and leaves the file to be read back.
const maxPending = 8

// orderedHasher hashes a file's chunks in file order as they arrive, holding
// the few that arrive early. One worker at a time hashes, outside the lock,
// so the others go on downloading instead of queueing behind it.
type orderedHasher struct {
	mu      gosync.Mutex
	idle    *gosync.Cond // signalled when the hashing worker is done
	h       *blake3.Hasher
	next    int
	pending map[int]*[]byte
	sizes   map[int]int64
	hashing bool
	gaveUp  bool
}

func newOrderedHasher() *orderedHasher {
	o := &orderedHasher{h: blake3.New(), pending: map[int]*[]byte{}, sizes: map[int]int64{}}
	o.idle = gosync.NewCond(&o.mu)
	return o
}

// add takes chunk i (its first n bytes of buf) and returns the buffers it no
// longer needs.
func (o *orderedHasher) add(i int, buf *[]byte, n int64) []*[]byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gaveUp {
		return []*[]byte{buf}
	}
	o.pending[i], o.sizes[i] = buf, n
	var done []*[]byte
	if len(o.pending) > maxPending {
		o.gaveUp = true // the file will be read back instead
		for k, b := range o.pending {
			done = append(done, b)
			delete(o.pending, k)
		}
		return done
	}
	if o.hashing {
		return nil // the hashing worker will take it
	}
	o.hashing = true
	for !o.gaveUp {
		b, ok := o.pending[o.next]
		if !ok {
			break
		}
		size := o.sizes[o.next]
		delete(o.pending, o.next)
		o.mu.Unlock()
		o.h.Write((*b)[:size])
		o.mu.Lock()
		done = append(done, b)
		o.next++
	}
	o.hashing = false
	o.idle.Broadcast()
	return done
}

// sum returns the whole-file hash, or nil if the chunks came too far out of
// order to hash them as they arrived. It waits for a worker still hashing.
func (o *orderedHasher) sum(chunks int) []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	for o.hashing {
		o.idle.Wait()
	}
	if o.gaveUp || o.next != chunks {
		return nil
	}
	return o.h.Sum(nil)
}

// fetchChunk downloads the chunk named hash into data, which has the
// chunk's length. Its content is checked later, with the whole file (see
// finishFile).
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
	return nil
}

// finishFile checks a written file against the manifest, makes it durable
// and gives it its mode and mtime. The whole-file hash, computed from the
// chunks as they arrived in order, covers every byte; when it is missing (the
// chunks came too far out of order) or wrong, the file is read back and each
// chunk checked against its own hash, so the error names the bad chunk.
func finishFile(fh *os.File, f File, chunkSize int64, o *orderedHasher) error {
	want, _ := hex.DecodeString(f.Hash)
	if sum := o.sum(len(f.Chunks)); sum == nil || !bytes.Equal(sum, want) {
		if err := verifyChunks(fh, f, chunkSize, want); err != nil {
			return err
		}
	}
	if err := fh.Sync(); err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	if err := fh.Chmod(f.Mode); err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	return os.Chtimes(fh.Name(), f.MTime, f.MTime)
}

// verifyChunks reads a written file back and checks each chunk's hash and
// the whole-file hash.
func verifyChunks(fh *os.File, f File, chunkSize int64, want []byte) error {
	whole := blake3.New()
	buf := make([]byte, min(chunkSize, f.Size))
	for i, hash := range f.Chunks {
		off, n := chunkSpan(f.Size, chunkSize, i)
		if _, err := fh.ReadAt(buf[:n], off); err != nil {
			return fmt.Errorf("verifying %s: %w", f.Path, err)
		}
		if sum := blake3.Sum256(buf[:n]); hex.EncodeToString(sum[:]) != hash {
			return fmt.Errorf("%s: chunk %s: content does not match its hash (corrupt store?)", f.Path, hash)
		}
		whole.Write(buf[:n])
	}
	if !bytes.Equal(whole.Sum(nil), want) {
		return fmt.Errorf("%s: restored content does not match the file hash", f.Path)
	}
	return nil
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
