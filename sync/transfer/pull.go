package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/batonrun/baton/internal/directio"
	"github.com/batonrun/baton/internal/durable"
	"github.com/batonrun/baton/internal/progress"
	"github.com/batonrun/baton/sync/storage"
	"golang.org/x/sync/errgroup"
)

// Pull copies every object of s into dir, keeping the object keys as relative
// paths. An object whose local copy already has its size and modification time
// (set by the pull that wrote it) is skipped, so a second pull of an unchanged
// store transfers nothing.
//
// A store with no object is an error (ErrEmptySource), and then dir is not
// created, unless Options.AllowEmpty.
//
// Every file is written under a temporary name beside its final one, fsynced
// and renamed into place, so an interrupted pull never leaves a truncated file
// under a final name; running Pull again finishes the job. Keys that would
// land outside dir are refused before anything is written.
func (e *Engine) Pull(ctx context.Context, s storage.Store, dir string) (_ Stats, err error) {
	tr := e.progress.Start("pulling " + s.String() + " into " + dir)
	defer func() { tr.End(err) }()
	s = storage.WithRetry(s, e.retry)
	var objects []storage.ObjectInfo
	err = s.List(ctx, "", func(o storage.ObjectInfo) error {
		objects = append(objects, o)
		return nil
	})
	if err != nil {
		return Stats{}, err
	}
	if len(objects) == 0 && !e.allowEmpty {
		return Stats{}, fmt.Errorf("%s %w: no object under it (a misspelt prefix? nothing was written to %s)", s, ErrEmptySource, dir)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return Stats{}, err
	}
	paths := make([]string, len(objects))
	for i, o := range objects {
		if paths[i], err = localPath(dir, o.Key); err != nil {
			return Stats{}, err
		}
	}
	if err := checkFileDirConflicts(objects); err != nil {
		return Stats{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Stats{}, err
	}

	var stats Stats
	todo := planTransfer(indices(len(objects)), func(i int) int64 { return objects[i].Size },
		func(i int) bool { return upToDate(paths[i], objects[i]) }, &stats, tr)

	// A downloaded file is made durable and renamed by one of the sealers,
	// so that its worker goes on to the next download instead of waiting
	// for the disk; a sealer's error stops the downloads too.
	sealers, sctx := errgroup.WithContext(ctx)
	sealers.SetLimit(e.workers)
	p := e.newPool(sctx)
	done := tally{tr: tr}
	dirs := newDirSet()
	for _, i := range todo {
		o := objects[i]
		if !e.download(p, sealers, s, o, paths[i], dirs, tr, func() { done.file(o.Size) }) {
			break
		}
	}
	err = p.wait()
	if serr := sealers.Wait(); err == nil {
		err = serr
	}
	if serr := dirs.sync(); err == nil {
		err = serr
	}
	stats.Files, stats.Bytes = done.files.Load(), done.bytes.Load()
	return stats, err
}

// indices returns 0, 1, ..., n-1.
func indices(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// upToDate reports whether the file at path holds o as a previous pull wrote
// it: same size, and the modification time set to the object's.
func upToDate(path string, o storage.ObjectInfo) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Size() == o.Size && fi.ModTime().Equal(o.LastModified)
}

// download queues the ranges of o and, after the last one, has a sealer
// seal the file, or removes what was written.
func (e *Engine) download(p *pool, sealers *errgroup.Group, s storage.Store, o storage.ObjectInfo, path string, dirs *dirSet, tr *progress.Transfer, done func()) bool {
	tmpPath := partialPath(path)
	var (
		once    sync.Once
		f       *directio.File
		openErr error
	)
	open := func() (*directio.File, error) {
		once.Do(func() {
			if openErr = os.MkdirAll(filepath.Dir(path), 0o755); openErr != nil {
				return
			}
			f, openErr = directio.OpenFile(tmpPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
			if openErr == nil {
				openErr = f.Truncate(o.Size)
			}
		})
		return f, openErr
	}
	task := newFileTask(0, func(ctx context.Context, ok bool) error {
		if !ok {
			if f != nil {
				f.Close()
				os.Remove(tmpPath)
			}
			return nil
		}
		sealers.Go(func() error {
			if err := seal(f, tmpPath, path, o); err != nil {
				os.Remove(tmpPath)
				return fmt.Errorf("pull %s: %w", o.Key, err)
			}
			dirs.add(filepath.Dir(path))
			done()
			return nil
		})
		return nil
	})
	spans := e.ranges(o.Size)
	if len(spans) == 0 {
		spans = []span{{num: 1}} // an empty object is still one unit
	}
	task.left = len(spans)
	return p.runUnits(spans, func(ctx context.Context, sp span) error {
		f, err := open()
		if err == nil {
			err = e.getRange(ctx, s, o, f, sp, tr)
		}
		if err != nil {
			return fmt.Errorf("pull %s: %w", o.Key, err)
		}
		return nil
	}, task)
}

// getRange writes the span sp of object o into f at the same offset,
// counting its bytes on tr as they arrive. It reads whole buffers, so that
// each write starts at a multiple of the buffer's size and its whole blocks
// go around the page cache (internal/directio: the fsync at the end then
// has little left to write). The
// store (storage.WithRetry) resumes a body cut mid-stream after the bytes
// already written, and fails it if the object changed meanwhile.
func (e *Engine) getRange(ctx context.Context, s storage.Store, o storage.ObjectInfo, f *directio.File, sp span, tr *progress.Transfer) error {
	if sp.n == 0 {
		return nil
	}
	bufp := e.buffers.Get().(*[]byte)
	defer e.buffers.Put(bufp)
	rc, info, err := s.Get(ctx, o.Key, sp.off, sp.n)
	if err != nil {
		return err
	}
	defer rc.Close()
	if info.ETag != o.ETag || info.Size != o.Size {
		return fmt.Errorf("object changed while it was being pulled (ETag %s, was %s): pull again", info.ETag, o.ETag)
	}
	body, buf := io.LimitReader(rc, sp.n), *bufp
	for done := int64(0); done < sp.n; {
		n, err := io.ReadFull(body, buf[:min(int64(len(buf)), sp.n-done)])
		if n > 0 {
			if _, werr := f.WriteAt(buf[:n], sp.off+done); werr != nil {
				return werr
			}
			done += int64(n)
			tr.Add(0, int64(n))
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return &storage.Error{Op: "get", Key: o.Key, Kind: storage.ErrTransient, Err: io.ErrUnexpectedEOF}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// seal makes the finished temporary file durable, gives it the object's
// modification time and renames it to its final name.
func seal(f *directio.File, tmpPath, path string, o storage.ObjectInfo) error {
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(tmpPath, o.LastModified, o.LastModified)
	}
	if err == nil {
		err = os.Rename(tmpPath, path)
	}
	return err
}

// checkFileDirConflicts refuses a listing where one key is a directory of
// another ("a" and "a/b"), which no file system can hold.
func checkFileDirConflicts(objects []storage.ObjectInfo) error {
	keys := make(map[string]bool, len(objects))
	for _, o := range objects {
		keys[o.Key] = true
	}
	for _, o := range objects {
		for i := len(o.Key) - 1; i > 0; i-- {
			if o.Key[i] == '/' && keys[o.Key[:i]] {
				return fmt.Errorf("object %q and object %q cannot both be files in a directory", o.Key[:i], o.Key)
			}
		}
	}
	return nil
}

// dirSet collects directories whose entries changed, to fsync each once.
type dirSet struct {
	mu   sync.Mutex
	dirs map[string]bool
}

func newDirSet() *dirSet { return &dirSet{dirs: map[string]bool{}} }

func (d *dirSet) add(dir string) {
	d.mu.Lock()
	d.dirs[dir] = true
	d.mu.Unlock()
}

func (d *dirSet) sync() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for _, dir := range slices.Sorted(maps.Keys(d.dirs)) {
		if err := durable.SyncDir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
