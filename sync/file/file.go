// Package file is the Store on a local directory: a plain disk, an NFS mount,
// a RunPod network volume. It is baton's embedded default, for trying baton
// with no cloud account, and the fastest store for tests.
//
// An object is the file root/key. Writes go to a temporary file under
// root/.baton-store/tmp, are fsynced, and are renamed into place, so a reader
// never sees a partial object. Create-only writes use link(2), which fails
// atomically when the name exists; replace-if-ETag-matches holds an flock(2)
// on root/.baton-store/lock while it compares and renames, so it is atomic
// across processes too. An ETag is made of the file's inode, size and
// nanosecond mtime, which every write sets from the clock.
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/batonrun/baton/internal/durable"
	"github.com/batonrun/baton/sync/storage"
)

// internalDir holds the store's temporary files and lock; no key may start
// with it.
const internalDir = ".baton-store"

// Store is a Store rooted at a local directory.
type Store struct {
	root string
	now  func() time.Time
}

// New returns the store rooted at dir, which is created on the first write.
func New(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("file store %q: %w", dir, err)
	}
	return &Store{root: abs, now: time.Now}, nil
}

// String names the store as a URL.
func (s *Store) String() string { return "file://" + s.root }

// Root is the directory the store lives in.
func (s *Store) Root() string { return s.root }

func (s *Store) path(op, key string) (string, error) {
	if err := storage.CheckKey(key); err != nil {
		return "", err
	}
	if key == internalDir || strings.HasPrefix(key, internalDir+"/") {
		return "", &storage.Error{Op: op, Key: key, Kind: storage.ErrInvalid, Err: errors.New("reserved by the file store")}
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Put implements storage.Store.
func (s *Store) Put(ctx context.Context, key string, p storage.Payload, opts storage.PutOptions) (storage.ObjectInfo, error) {
	dst, err := s.path("put", key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	tmp, err := s.tempFile()
	if err != nil {
		return storage.ObjectInfo{}, wrap("put", key, err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed or linked
	n, err := io.Copy(tmp, contextReader{ctx, p.Reader()})
	if err == nil && n != p.Size() {
		err = fmt.Errorf("payload gave %d bytes, want %d", n, p.Size())
	}
	if err == nil {
		err = s.seal(tmp)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return storage.ObjectInfo{}, wrap("put", key, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return storage.ObjectInfo{}, wrap("put", key, err)
	}
	switch {
	case opts.IfAbsent:
		if err := os.Link(tmp.Name(), dst); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return storage.ObjectInfo{}, &storage.Error{Op: "put", Key: key, Kind: storage.ErrPreconditionFailed, Err: errors.New("object exists")}
			}
			return storage.ObjectInfo{}, wrap("put", key, err)
		}
	case opts.IfMatch != "":
		if err := s.replaceIfMatch(tmp.Name(), dst, key, opts.IfMatch); err != nil {
			return storage.ObjectInfo{}, err
		}
	default:
		if err := os.Rename(tmp.Name(), dst); err != nil {
			return storage.ObjectInfo{}, wrap("put", key, err)
		}
	}
	durable.SyncDir(filepath.Dir(dst))
	return s.stat("put", key, dst)
}

// replaceIfMatch renames tmp over dst if dst's ETag is etag, holding the
// store's lock so that no other conditional write interleaves.
func (s *Store) replaceIfMatch(tmp, dst, key, etag string) error {
	unlock, err := s.lock()
	if err != nil {
		return wrap("put", key, err)
	}
	defer unlock()
	cur, err := s.stat("put", key, dst)
	if err != nil {
		return err
	}
	if cur.ETag != etag {
		return &storage.Error{Op: "put", Key: key, Kind: storage.ErrPreconditionFailed, Err: fmt.Errorf("ETag is %s, not %s", cur.ETag, etag)}
	}
	return wrap("put", key, os.Rename(tmp, dst))
}

// Get implements storage.Store.
func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, storage.ObjectInfo, error) {
	p, err := s.path("get", key)
	if err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, storage.ObjectInfo{}, wrap("get", key, err)
	}
	info, err := s.statFile("get", key, f)
	if err == nil && (offset < 0 || offset > info.Size) {
		err = &storage.Error{Op: "get", Key: key, Kind: storage.ErrInvalid, Err: fmt.Errorf("offset %d outside object of %d bytes", offset, info.Size)}
	}
	if err != nil {
		f.Close()
		return nil, storage.ObjectInfo{}, err
	}
	if length < 0 || offset+length > info.Size {
		length = info.Size - offset
	}
	return &fileBody{SectionReader: io.NewSectionReader(f, offset, length), f: f, ctx: ctx}, info, nil
}

// Stat implements storage.Store.
func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	p, err := s.path("stat", key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	return s.stat("stat", key, p)
}

// List implements storage.Store.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	// Walk the deepest directory that the prefix names whole, then filter.
	dir := s.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		dir = filepath.Join(s.root, filepath.FromSlash(prefix[:i]))
	}
	var found []storage.ObjectInfo
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if key == internalDir {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while we walked
			}
			return err
		}
		found = append(found, info(key, fi))
		return nil
	})
	if err != nil {
		return wrap("list", prefix, err)
	}
	slices.SortFunc(found, func(a, b storage.ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	for _, o := range found {
		if err := fn(o); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements storage.Store. It also removes directories it leaves empty.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path("delete", key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return wrap("delete", key, err)
	}
	for dir := filepath.Dir(p); dir != s.root && strings.HasPrefix(dir, s.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break // not empty, or gone
		}
	}
	return nil
}

// NewUpload implements storage.Store: the parts are written at their offsets
// into one temporary file, which Complete renames into place.
func (s *Store) NewUpload(ctx context.Context, key string) (storage.Upload, error) {
	dst, err := s.path("upload", key)
	if err != nil {
		return nil, err
	}
	tmp, err := s.tempFile()
	if err != nil {
		return nil, wrap("upload", key, err)
	}
	return &upload{s: s, key: key, dst: dst, f: tmp}, nil
}

type upload struct {
	s   *Store
	key string
	dst string
	f   *os.File
}

func (u *upload) Part(ctx context.Context, n int, offset int64, p storage.Payload) (storage.CompletedPart, error) {
	w := io.NewOffsetWriter(u.f, offset)
	written, err := io.Copy(w, contextReader{ctx, p.Reader()})
	if err == nil && written != p.Size() {
		err = fmt.Errorf("payload gave %d bytes, want %d", written, p.Size())
	}
	if err != nil {
		return storage.CompletedPart{}, wrap("upload", u.key, err)
	}
	return storage.CompletedPart{Number: n, ETag: fmt.Sprintf("%d@%d", n, offset), Size: p.Size()}, nil
}

func (u *upload) Complete(ctx context.Context, parts []storage.CompletedPart) (storage.ObjectInfo, error) {
	defer os.Remove(u.f.Name())
	var total int64
	for _, p := range parts {
		total += p.Size
	}
	err := u.f.Truncate(total) // a part sent twice with another size must not leave a tail
	if err == nil {
		err = u.s.seal(u.f)
	}
	if cerr := u.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.MkdirAll(filepath.Dir(u.dst), 0o755)
	}
	if err == nil {
		err = os.Rename(u.f.Name(), u.dst)
	}
	if err != nil {
		return storage.ObjectInfo{}, wrap("upload", u.key, err)
	}
	durable.SyncDir(filepath.Dir(u.dst))
	return u.s.stat("upload", u.key, u.dst)
}

func (u *upload) Abort(ctx context.Context) error {
	u.f.Close()
	if err := os.Remove(u.f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return wrap("upload", u.key, err)
	}
	return nil
}

// tempFile creates a file in the store's temporary directory, which sits on
// the same file system as the objects so that rename and link work.
func (s *Store) tempFile() (*os.File, error) {
	dir := filepath.Join(s.root, internalDir, "tmp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return os.CreateTemp(dir, "put-*")
}

// seal makes a written temporary file durable and stamps it with the current
// time in nanoseconds, which the ETag is made of.
func (s *Store) seal(f *os.File) error {
	if err := f.Sync(); err != nil {
		return err
	}
	now := s.now()
	return os.Chtimes(f.Name(), now, now)
}

// lock takes the store-wide lock for conditional replaces.
func (s *Store) lock() (unlock func(), err error) {
	dir := filepath.Join(s.root, internalDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil // closing releases the flock
}

func (s *Store) stat(op, key, p string) (storage.ObjectInfo, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return storage.ObjectInfo{}, wrap(op, key, err)
	}
	if !fi.Mode().IsRegular() {
		return storage.ObjectInfo{}, &storage.Error{Op: op, Key: key, Kind: storage.ErrNotFound, Err: errors.New("not a regular file")}
	}
	return info(key, fi), nil
}

func (s *Store) statFile(op, key string, f *os.File) (storage.ObjectInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return storage.ObjectInfo{}, wrap(op, key, err)
	}
	if !fi.Mode().IsRegular() {
		return storage.ObjectInfo{}, &storage.Error{Op: op, Key: key, Kind: storage.ErrNotFound, Err: errors.New("not a regular file")}
	}
	return info(key, fi), nil
}

func info(key string, fi fs.FileInfo) storage.ObjectInfo {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return storage.ObjectInfo{
		Key:          key,
		Size:         fi.Size(),
		ETag:         fmt.Sprintf("%x-%x-%x", fi.ModTime().UnixNano(), fi.Size(), ino),
		LastModified: fi.ModTime(),
	}
}

// wrap maps an OS error to the store's error kinds; nil stays nil.
func wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var kind error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s %q: %w", op, key, err)
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EISDIR):
		kind = storage.ErrNotFound
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		kind = storage.ErrPermission
	case errors.Is(err, syscall.EINTR), errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.ESTALE):
		kind = storage.ErrTransient
	default:
		kind = storage.ErrIO
	}
	return &storage.Error{Op: op, Key: key, Kind: kind, Err: err}
}

// fileBody is the reader Get returns; it stops early if ctx is cancelled.
type fileBody struct {
	*io.SectionReader
	f   *os.File
	ctx context.Context
}

func (b *fileBody) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	return b.SectionReader.Read(p)
}

func (b *fileBody) Close() error { return b.f.Close() }

// contextReader stops a copy once ctx is cancelled.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
