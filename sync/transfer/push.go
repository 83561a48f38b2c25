package transfer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/batonrun/baton/internal/progress"
	"github.com/batonrun/baton/sync/storage"
)

// Push copies every regular file under dir into s, keyed by its path relative
// to dir. A file is skipped when the store already has an object of the same
// size written after the file last changed. Symbolic links and other special
// files are skipped with a log line; files a pull is still writing are
// ignored.
//
// A directory with no file is an error (ErrEmptySource), unless
// Options.AllowEmpty.
//
// A file that changes while it is uploaded makes Push fail, naming it: the
// store would otherwise hold a mix of two versions.
func (e *Engine) Push(ctx context.Context, dir string, s storage.Store) (_ Stats, err error) {
	tr := e.progress.Start("pushing " + dir + " to " + s.String())
	defer func() { tr.End(err) }()
	files, err := e.scan(dir)
	if err != nil {
		return Stats{}, err
	}
	if len(files) == 0 && !e.allowEmpty {
		return Stats{}, fmt.Errorf("%s %w: no file under it", dir, ErrEmptySource)
	}
	s = storage.WithRetry(s, e.retry)
	remote := make(map[string]storage.ObjectInfo, len(files))
	err = s.List(ctx, "", func(o storage.ObjectInfo) error {
		remote[o.Key] = o
		return nil
	})
	if err != nil {
		return Stats{}, err
	}

	var stats Stats
	todo := planTransfer(files, func(f localFile) int64 { return f.size }, func(f localFile) bool {
		o, ok := remote[f.key]
		return ok && o.Size == f.size && o.LastModified.After(f.mtime)
	}, &stats, tr)

	p := e.newPool(ctx)
	done := tally{tr: tr}
	for _, f := range todo {
		if !e.upload(p, s, f, tr, func() { done.file(f.size) }) {
			break
		}
	}
	err = p.wait()
	stats.Files, stats.Bytes = done.files.Load(), done.bytes.Load()
	return stats, err
}

type localFile struct {
	path  string
	key   string
	size  int64
	mtime time.Time
}

// scan lists the regular files under dir.
func (e *Engine) scan(dir string) ([]localFile, error) {
	var files []localFile
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		switch {
		case !d.Type().IsRegular():
			e.log.Info("push: skipping a file that is not a regular file", "path", p, "type", d.Type().String())
			return nil
		case len(d.Name()) > len(partialSuffix) && d.Name()[0] == '.' && filepath.Ext(d.Name()) == partialSuffix:
			return nil
		}
		if err := storage.CheckKey(key); err != nil {
			return fmt.Errorf("push: %s cannot be stored: %w", p, err)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, localFile{path: p, key: key, size: fi.Size(), mtime: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("push: scanning %s: %w", dir, err)
	}
	return files, nil
}

// upload queues the parts of f (or f whole) and completes the upload after
// the last part, counting the bytes sent on tr.
func (e *Engine) upload(p *pool, s storage.Store, f localFile, tr *progress.Transfer, done func()) bool {
	var (
		once    sync.Once
		file    *os.File
		openErr error
	)
	open := func() (*os.File, error) {
		once.Do(func() { file, openErr = os.Open(f.path) })
		return file, openErr
	}
	fail := func(err error) error { return fmt.Errorf("push %s: %w", f.path, err) }

	if f.size <= e.partSize {
		return p.run(func(ctx context.Context) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			fh, err := open()
			if err != nil {
				return fail(err)
			}
			defer fh.Close()
			_, err = s.Put(ctx, f.key, storage.NewPayload(fh, 0, f.size), storage.PutOptions{})
			if err == nil {
				err = unchanged(fh, f)
			}
			if err != nil {
				return fail(err)
			}
			tr.Add(0, f.size)
			done()
			return nil
		})
	}

	var up storage.Upload
	var startErr error
	var startOnce sync.Once
	start := func(ctx context.Context) (storage.Upload, error) {
		startOnce.Do(func() {
			up, startErr = s.NewUpload(ctx, f.key)
		})
		return up, startErr
	}
	spans := e.parts(f.size)
	parts := make([]storage.CompletedPart, len(spans))
	task := newFileTask(len(spans), func(ctx context.Context, ok bool) error {
		if file != nil {
			defer file.Close()
		}
		var err error
		if ok {
			err = unchanged(file, f)
		}
		if ok && err == nil {
			_, err = up.Complete(ctx, parts)
		}
		if ok && err == nil {
			done()
			return nil
		}
		if up != nil {
			// The run's context may be cancelled already; an abort still
			// deserves a few seconds.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if aerr := up.Abort(actx); aerr != nil {
				e.log.Warn("push: could not abort a multipart upload; the store keeps its parts until its lifecycle rules remove them", "key", f.key, "err", aerr)
			}
		}
		if err != nil {
			return fail(err)
		}
		return nil
	})
	return p.runUnits(spans, func(ctx context.Context, sp span) error {
		fh, err := open()
		if err != nil {
			return fail(err)
		}
		up, err := start(ctx)
		if err != nil {
			return fail(err)
		}
		parts[sp.num-1], err = up.Part(ctx, sp.num, sp.off, storage.NewPayload(fh, sp.off, sp.n))
		if err != nil {
			return fail(err)
		}
		tr.Add(0, sp.n)
		return nil
	}, task)
}

// errChanged says a file changed while it was uploaded.
var errChanged = errors.New("the file changed while it was uploaded; push again once it is stable")

// unchanged checks that the open file still has the size and mtime it was
// scanned with.
func unchanged(fh *os.File, f localFile) error {
	fi, err := fh.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != f.size || !fi.ModTime().Equal(f.mtime) {
		return errChanged
	}
	return nil
}
