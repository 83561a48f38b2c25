package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/batonrun/baton/internal/directio"
	"github.com/batonrun/baton/internal/durable"
	"github.com/batonrun/baton/internal/progress"
	"github.com/batonrun/baton/sync/storage"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Restore writes checkpoint seq (0: the one latest.json names) into dir,
// replacing what dir held. It downloads the chunks in parallel into a
// staging directory, verifies every chunk's hash as it arrives, makes every
// file durable, and only then swaps the staging directory in. On any failure
// (a bad hash, a full disk, the network) the staging directory is removed,
// dir is left as it was, and the error says what happened. A chunk the store
// lost, tore or corrupted is an error wrapping ErrDamaged (a
// *DamagedChunkError) and is not retried.
//
// The staging directory is beside dir (.NAME.baton-restore-HEX), and the
// swap is two renames. A dir that is a mount point (a RunPod network volume,
// a Kubernetes volume) cannot be renamed: it is staged inside itself
// (dir/.baton-restore-HEX) and its entries are swapped under a journal, so
// that the swap stays all-or-nothing across a crash (see RemoveLeftovers).
//
// Restore first removes what an interrupted restore of dir left
// (RemoveLeftovers), and holds an advisory lock (flock) on dir's parent
// while it works, so that two restores into one place take turns instead of
// removing each other's staging directory.
//
// If dir is a symbolic link, the link itself is replaced by the restored
// directory; what it pointed to is left alone.
//
// The manifest is untrusted: it is validated (paths, sizes, counts) before
// anything is written, and files are only created inside the fresh staging
// directory, which holds no symbolic link. At most 2 × Options.Workers files
// are open at once, whatever the number of files.
func (r *Repo) Restore(ctx context.Context, seq int64, dir string) (*Manifest, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	// The leftovers go first; a parent that does not exist yet holds none,
	// and is only made once there is a checkpoint to restore.
	parent := filepath.Dir(dir)
	var unlock func()
	lock := func() error {
		var err error
		if unlock, err = lockDir(parent); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		if err := removeLeftovers(dir); err != nil {
			unlock()
			return fmt.Errorf("restore: removing what an interrupted restore left: %w", err)
		}
		return nil
	}
	if _, err := os.Stat(parent); err == nil {
		if err := lock(); err != nil {
			return nil, err
		}
		defer unlock()
	}
	m, err := r.Manifest(ctx, seq)
	if err != nil {
		return nil, err
	}
	if unlock == nil {
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		if err := lock(); err != nil {
			return nil, err
		}
		defer unlock()
	}
	inPlace, err := isMountPoint(dir)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	hexID, err := newSuffix()
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	names := leftoverNames(dir, hexID)
	staging := names.staging
	if inPlace {
		staging = names.inStaging
	}
	if err := os.Mkdir(staging, 0o755); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	committed := false // the staging directory is no longer ours to drop
	defer func() {
		if !committed {
			os.RemoveAll(staging)
		}
	}()
	if err := os.Chmod(staging, 0o755); err != nil { // whatever the umask
		return nil, fmt.Errorf("restore: %w", err)
	}
	at("staging")
	tr := r.opts.Progress.Start(fmt.Sprintf("restoring checkpoint %d of run %s into %s", m.Seq, r.opts.Run, dir))
	tr.Plan(int64(len(m.Files)), m.Size)
	err = r.download(ctx, m, staging, tr)
	tr.End(err)
	if err != nil {
		return nil, fmt.Errorf("restore of run %s checkpoint %d: %w", r.opts.Run, m.Seq, err)
	}
	at("staged")
	if inPlace {
		err = swapInPlace(dir, hexID, &committed)
	} else {
		err = swapBeside(staging, dir, names.old, &committed)
	}
	if err != nil {
		return nil, fmt.Errorf("restore of run %s checkpoint %d: moving it into place: %w", r.opts.Run, m.Seq, err)
	}
	return m, nil
}

// testHook, when set (by tests only), is called at each named step of a
// restore; a test kills the process there to leave what a crash leaves.
var testHook func(step string)

func at(step string) {
	if testHook != nil {
		testHook(step)
	}
}

// openFile is one file of a restore between its creation and the moment its
// last chunk is written and it is made durable.
type openFile struct {
	fh     *directio.File
	f      File
	left   atomic.Int64 // tasks not yet done
	failed atomic.Bool
}

// download writes every file of m under staging, verifies it and makes it
// and every directory durable, counting what it wrote on tr.
//
// Files are created one at a time, in manifest order, and each file's chunks
// are all handed to the workers before the next file is opened; a file is
// closed by the worker that finishes its last chunk. A semaphore of
// 2 × Workers slots bounds the files open at once: the dispatcher waits for
// a slot before it opens a file, and it holds none while it waits for a
// worker, so the two never wait on each other.
func (r *Repo) download(ctx context.Context, m *Manifest, staging string, tr *progress.Transfer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Each chunk is checked against its name (its BLAKE3 hash) on the worker
	// that fetched it, so every byte is verified once and the hashing
	// spreads over the workers. Its whole blocks are written around the
	// page cache where the file system allows it (internal/directio): they
	// reach the disk while other chunks download, instead of all at the
	// fsync at the end. A file is made durable on the worker that wrote its
	// last chunk, while other downloads go on.
	buffers := sync.Pool{New: func() any { b := newFrame(m.ChunkSize); return &b }}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Workers)
	slots := make(chan struct{}, 2*r.opts.Workers)
	dirs := dirSet{staging: true}

	// done is each task's last step: the task that brings the file's count
	// to zero finishes it (if no task of it failed), closes it and frees
	// its slot.
	done := func(of *openFile, err error) error {
		if err != nil {
			of.failed.Store(true)
		}
		if of.left.Add(-1) != 0 {
			return err
		}
		if err == nil && !of.failed.Load() {
			err = finishFile(of.fh.File, of.f)
		}
		if cerr := of.fh.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("%s: %w", of.f.Path, cerr)
		}
		<-slots
		if err == nil {
			tr.Add(1, 0)
			at("file")
		}
		return err
	}

	var dispatchErr error
	stopped := false
dispatch:
	for _, f := range m.Files {
		p := filepath.Join(staging, filepath.FromSlash(f.Path))
		if err := dirs.make(filepath.Dir(p)); err != nil {
			dispatchErr = err
			break
		}
		select {
		case slots <- struct{}{}:
		case <-gctx.Done():
			stopped = true
			break dispatch
		}
		fh, err := directio.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
		if err == nil {
			if err = allocate(fh.File, f.Size); err != nil {
				fh.Close()
				err = fmt.Errorf("%s: %w", f.Path, err)
			}
		}
		if err != nil {
			<-slots
			dispatchErr = err
			break
		}
		of := &openFile{fh: fh, f: f}
		if len(f.Chunks) == 0 {
			of.left.Store(1)
			g.Go(func() error { return done(of, nil) })
			continue
		}
		of.left.Store(int64(len(f.Chunks)))
		for c, hash := range f.Chunks {
			off, n := chunkSpan(f.Size, m.ChunkSize, c)
			g.Go(func() error {
				err := gctx.Err()
				if err == nil {
					buf := buffers.Get().(*[]byte)
					var data []byte
					if data, err = r.fetchChunk(gctx, hash, *buf, n); err != nil {
						err = fmt.Errorf("%s: %w", f.Path, err)
					} else if _, werr := of.fh.WriteAt(data, off); werr != nil {
						err = fmt.Errorf("writing %s: %w", f.Path, werr)
					} else {
						tr.Add(0, n)
					}
					buffers.Put(buf)
				}
				return done(of, err)
			})
		}
	}
	if dispatchErr != nil {
		cancel()
	}
	err := g.Wait()
	switch {
	case dispatchErr != nil:
		return dispatchErr
	case err != nil:
		return err
	case stopped:
		return context.Cause(gctx)
	}
	return dirs.sync(r.opts.Workers)
}

// dirSet is the set of directories a restore created in its staging
// directory.
type dirSet map[string]bool

// make creates dir and its missing parents; the staging directory, their
// root, is in the set from the start.
func (d dirSet) make(dir string) error {
	if d[dir] {
		return nil
	}
	if err := d.make(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	d[dir] = true
	return nil
}

// sync makes every directory of the set durable, so that the staged tree
// is complete on disk before it is swapped in.
func (d dirSet) sync(workers int) error {
	var g errgroup.Group
	g.SetLimit(workers)
	for dir := range d {
		g.Go(func() error { return durable.SyncDir(dir) })
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

// fetchChunk downloads the chunk named hash, n bytes long, into frame (see
// newFrame), checks its content against its name and returns the content.
// A missing chunk,
// one of another length, or one whose content does not match its name is a
// *DamagedChunkError and is not retried: the store lost or tore it.
//
// In an encrypted run the object is sealed: it is opened in place, and one
// that does not open is damaged (ChunkNotAuthentic). Opening is the check:
// the GCM tag authenticates the content together with the chunk's name
// (chunkAD) under a key only the run's writers hold, so a tampered, torn or
// swapped object does not open. The keyed hash of the content is not
// computed again here (it would double the restore's CPU work); verify
// --deep computes it (checkChunk), which also catches a writer that sealed
// content under a name that is not its hash.
func (r *Repo) fetchChunk(ctx context.Context, hash string, frame []byte, size int64) ([]byte, error) {
	into := r.frameObject(frame, size)
	n := int64(len(into))
	err := readAgainIfChanged(func() error {
		rc, info, err := r.store.Get(ctx, chunkKey(hash), 0, -1)
		if errors.Is(err, storage.ErrNotFound) {
			return damagedChunk(hash, ChunkMissing, 0, n)
		}
		if err != nil {
			return err
		}
		defer rc.Close()
		if info.Size != n {
			return damagedChunk(hash, ChunkWrongSize, info.Size, n)
		}
		return readChunkBody(rc, chunkKey(hash), into)
	})
	if err != nil {
		return nil, err
	}
	data, err := r.openFrame(hash, frame, size)
	if err != nil {
		return nil, damagedChunk(hash, ChunkNotAuthentic, n, n)
	}
	if r.key == nil && r.chunkName(data) != hash {
		return nil, damagedChunk(hash, ChunkWrongContent, n, n)
	}
	return data, nil
}

// readChunkBody reads the body of the chunk object under key into data,
// which has the chunk's length. The store resumes a body cut mid-stream
// (storage.WithRetry); an error is what it gave up with.
func readChunkBody(rc io.Reader, key string, data []byte) error {
	_, err := io.ReadFull(rc, data)
	if _, ok := errors.AsType[*storage.Error](err); err != nil && !ok {
		return &storage.Error{Op: "get", Key: key, Kind: storage.ErrTransient, Err: err}
	}
	return err
}

// finishFile gives a fully written and verified file its mode and mtime and
// makes it durable, content and metadata.
func finishFile(fh *os.File, f File) error {
	if err := fh.Chmod(f.Mode); err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	if err := os.Chtimes(fh.Name(), f.MTime, f.MTime); err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	if err := fh.Sync(); err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	return nil
}

// swapBeside puts staging where dir is: dir, if it exists, is first renamed
// to old, then removed once staging is in place. A crash between the two
// renames leaves old and staging with the same suffix and no dir;
// RemoveLeftovers then completes the swap. *committed is set while the
// staging directory must stay (it is, or is about to become, dir).
func swapBeside(staging, dir, old string, committed *bool) error {
	hadOld := true
	if err := os.Rename(dir, old); errors.Is(err, os.ErrNotExist) {
		hadOld = false
	} else if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EXDEV) {
		return fmt.Errorf("%w (%s cannot be renamed: a mount point this baton did not recognize as one?)", err, dir)
	} else if err != nil {
		return err
	}
	*committed = true
	at("aside")
	if err := os.Rename(staging, dir); err != nil {
		if !hadOld {
			*committed = false
		} else if os.Rename(old, dir) == nil {
			*committed = false
		} // else the next restore, or RemoveLeftovers, completes the swap
		return err
	}
	parent := filepath.Dir(dir)
	if err := durable.SyncDir(parent); err != nil {
		return err
	}
	at("swapped")
	if hadOld {
		if err := os.RemoveAll(old); err != nil {
			return err
		}
		return durable.SyncDir(parent)
	}
	return nil
}

// swapInPlace swaps the entries of dir, a mount point, for those of its
// staging directory dir/.baton-restore-HEX:
//
//  1. every entry of dir but baton's own (and lost+found at a mount's root,
//     unless the checkpoint has one) is renamed into dir/.baton-old-HEX, and
//     both directories are made durable. A crash here is rolled back.
//  2. the journal dir/.baton-swap-HEX is written and made durable: from now
//     on the swap is rolled forward, never back (*committed is set).
//  3. the staged entries are renamed up into dir, dir is made durable, the
//     empty staging directory and the old entries are removed, and the
//     journal last.
//
// RemoveLeftovers runs the same roll-back and roll-forward steps after a
// crash, before anything else looks at dir.
func swapInPlace(dir, hexID string, committed *bool) error {
	n := leftoverNames(dir, hexID)
	keepLostFound := false
	if fi, err := os.Lstat(filepath.Join(dir, "lost+found")); err == nil && fi.IsDir() {
		if _, err := os.Lstat(filepath.Join(n.inStaging, "lost+found")); errors.Is(err, os.ErrNotExist) {
			keepLostFound = true
		}
	}
	if err := os.Mkdir(n.inOld, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return errors.Join(err, rollBack(n))
	}
	moved := 0
	for _, e := range entries {
		name := e.Name()
		if name == filepath.Base(n.inStaging) || name == filepath.Base(n.inOld) || name == filepath.Base(n.journal) ||
			keepLostFound && name == "lost+found" || strings.HasPrefix(name, ForkPrefix) {
			continue // a fork that baton run set aside inside a mount point stays
		}
		if err := os.Rename(filepath.Join(dir, name), filepath.Join(n.inOld, name)); err != nil {
			return errors.Join(err, rollBack(n))
		}
		if moved++; moved == 1 {
			at("aside-1")
		}
	}
	if err := durable.SyncDir(n.inOld); err != nil {
		return errors.Join(err, rollBack(n))
	}
	if err := durable.SyncDir(dir); err != nil {
		return errors.Join(err, rollBack(n))
	}
	at("aside")
	if err := writeJournal(n); err != nil {
		return errors.Join(err, rollBack(n))
	}
	*committed = true
	at("journal")
	if err := rollForward(n); err != nil {
		return fmt.Errorf("%w (the next restore of %s, or baton run, completes the swap)", err, dir)
	}
	return nil
}

// journalText is the content of a swap journal of suffix hexID. A journal is
// valid only if its content is exactly this, so one cut short by a crash
// counts as none (it is written and made durable before any staged entry
// moves).
func journalText(hexID string) string {
	return "baton restore swap\nstaging " + inStagingPrefix + hexID + "\nold " + inOldPrefix + hexID + "\n"
}

func writeJournal(n names) error {
	f, err := os.OpenFile(n.journal, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	at("journal-created")
	_, err = io.WriteString(f, journalText(n.hexID))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = durable.SyncDir(n.dir)
	}
	return err
}

// rollForward completes an in-place swap whose journal is durable: it moves
// whatever is left in the staging directory up into dir, then removes the
// staging directory, the old entries and the journal, in that order.
func rollForward(n names) error {
	entries, err := os.ReadDir(n.inStaging)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for i, e := range entries {
		err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(n.inStaging, e.Name()), unix.AT_FDCWD, filepath.Join(n.dir, e.Name()), unix.RENAME_NOREPLACE)
		if err != nil {
			return fmt.Errorf("moving %s up into %s: %w", e.Name(), n.dir, err)
		}
		if i == 0 {
			at("up-1")
		}
	}
	if err := durable.SyncDir(n.dir); err != nil {
		return err
	}
	at("up")
	if err := os.Remove(n.inStaging); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.RemoveAll(n.inOld); err != nil {
		return err
	}
	if err := durable.SyncDir(n.dir); err != nil {
		return err
	}
	at("old-removed")
	if err := os.Remove(n.journal); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return durable.SyncDir(n.dir)
}

// rollBack undoes an in-place swap that has no valid journal: the entries
// moved aside go back into dir, and the staging directory, the old
// directory and a journal cut short are removed.
func rollBack(n names) error {
	entries, err := os.ReadDir(n.inOld)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(n.inOld, e.Name()), unix.AT_FDCWD, filepath.Join(n.dir, e.Name()), unix.RENAME_NOREPLACE)
		if err != nil {
			return fmt.Errorf("moving %s back into %s: %w", e.Name(), n.dir, err)
		}
	}
	if err := durable.SyncDir(n.dir); err != nil {
		return err
	}
	if err := os.RemoveAll(n.inStaging); err != nil {
		return err
	}
	if err := os.Remove(n.inOld); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if ok, _ := isOurJournal(n.journal, n.hexID); ok {
		if err := os.Remove(n.journal); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return durable.SyncDir(n.dir)
}

// isMountPoint says whether dir is a directory (not a symbolic link to one)
// on which a file system is mounted, so that it cannot be renamed.
func isMountPoint(dir string) (bool, error) {
	var stx unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, dir, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_TYPE|unix.STATX_INO, &stx)
	switch {
	case errors.Is(err, unix.ENOENT):
		return false, nil
	case err == nil && stx.Mode&unix.S_IFMT != unix.S_IFDIR:
		return false, nil
	case err == nil && stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0:
		return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, nil
	}
	// No statx, or a kernel older than 5.8: a mount of another file system
	// shows in the device number (a bind mount of the same one does not;
	// the rename then fails with EBUSY and says so).
	var st, pst unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, &os.PathError{Op: "lstat", Path: dir, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return false, nil
	}
	if err := unix.Stat(filepath.Dir(dir), &pst); err != nil {
		return false, &os.PathError{Op: "stat", Path: filepath.Dir(dir), Err: err}
	}
	return st.Dev != pst.Dev, nil
}

// lockDir takes an exclusive advisory lock on directory p, waiting for it;
// the returned func releases it. Where the file system has no locks, it
// goes on without one.
func lockDir(p string) (func(), error) {
	d, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(d.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil && !errors.Is(err, unix.ENOLCK) && !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
		d.Close()
		return nil, &os.PathError{Op: "flock", Path: p, Err: err}
	}
	return func() { d.Close() }, nil
}
