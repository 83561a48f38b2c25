// Package storage is the contract between baton and object storage: the
// Store interface that every driver implements (drivers live beside it under
// sync/: sync/file, sync/s3aws, sync/s3minio), the typed errors that callers
// branch on, valid keys, re-readable payloads for uploads and the one retry
// policy. The transfer engine that mirrors directories lives in
// sync/transfer; opening a Store from a URL lives in sync/storeurl. Nothing
// here knows about checkpoints.
//
// The package sits at sync/storage rather than at sync/ itself so that its
// name says what it is and does not shadow the standard library's sync.
package storage

import (
	"context"
	"io"
	"time"
)

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	// Key is the object's name relative to the store's prefix.
	Key string
	// Size is the object's length in bytes.
	Size int64
	// ETag is an opaque version tag: it changes whenever the object is
	// replaced, and is what PutOptions.IfMatch compares against. It carries no
	// surrounding quotes.
	ETag string
	// LastModified is when the object was last written, as the store saw it.
	LastModified time.Time
}

// PutOptions makes a Put conditional. At most one of the fields may be set.
type PutOptions struct {
	// IfAbsent makes the Put succeed only if no object exists under the key.
	// When several writers race, exactly one wins; the others get
	// ErrPreconditionFailed.
	IfAbsent bool
	// IfMatch makes the Put succeed only if the object exists and its current
	// ETag equals IfMatch. A stale ETag gets ErrPreconditionFailed; a missing
	// object gets ErrNotFound or ErrPreconditionFailed, depending on the server
	// (both mean "your view is stale").
	IfMatch string
}

// Store is a flat namespace of immutable-once-written objects, addressed by
// keys relative to the store's prefix. Keys are non-empty, use "/" as the
// separator, and contain no "." or ".." segments.
//
// Every error a Store returns wraps exactly one of the sentinel errors of this
// package (ErrNotFound, ErrPreconditionFailed, ErrTransient, ErrUnreachable,
// ErrAuth, ErrPermission, ErrNoBucket, ErrInvalid, ErrIO) or context.Canceled /
// context.DeadlineExceeded, so that callers and the retry layer decide from
// the kind alone. Drivers do not retry: retries are a wrapper around any
// Store (WithRetry), put on once by the code that takes the store.
//
// A Store is safe for concurrent use.
type Store interface {
	// Put stores the payload under key, replacing any object there unless
	// opts makes the write conditional. A conditional Put is a single request:
	// the server decides atomically.
	Put(ctx context.Context, key string, p Payload, opts PutOptions) (ObjectInfo, error)

	// Get returns a reader of length bytes starting at offset; length < 0
	// means "to the end". The returned ObjectInfo describes the whole object.
	// A read error on the returned body wraps ErrTransient, and a body that
	// ends early returns an error rather than a silent short read.
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, ObjectInfo, error)

	// Stat describes the object under key, or returns ErrNotFound.
	Stat(ctx context.Context, key string) (ObjectInfo, error)

	// List calls fn for every object whose key starts with prefix, in
	// ascending byte order of keys, fetching as many pages as it takes. An
	// error from fn stops the listing and is returned as is.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error

	// Delete removes the object under key. Deleting a missing key is not an
	// error.
	Delete(ctx context.Context, key string) error

	// NewUpload starts an upload of one object in parts that may be sent in
	// parallel and in any order. The object appears only when the upload is
	// completed. Multipart uploads are never conditional.
	NewUpload(ctx context.Context, key string) (Upload, error)

	// String names the store for messages, with no credentials in it.
	String() string
}

// Upload is one object being written in parts.
type Upload interface {
	// Part stores part number n (1-based) whose first byte sits at offset in
	// the final object. Every part but the last must be at least MinPartSize
	// bytes long. Sending a part again replaces it.
	Part(ctx context.Context, n int, offset int64, p Payload) (CompletedPart, error)
	// Complete assembles the parts, ordered by number, into the object.
	Complete(ctx context.Context, parts []CompletedPart) (ObjectInfo, error)
	// Abort discards the parts sent so far.
	Abort(ctx context.Context) error
}

// CompletedPart is the receipt of one uploaded part.
type CompletedPart struct {
	Number int
	ETag   string
	Size   int64
}

// MinPartSize is the smallest part but the last that S3 accepts in a
// multipart upload.
const MinPartSize = 5 << 20

// MaxParts is the largest number of parts S3 accepts in one upload.
const MaxParts = 10000

// Payload is upload content that can be read more than once, so that a failed
// request can be replayed. It is a window of Size bytes over an io.ReaderAt
// (an *os.File, a bytes.Reader, ...).
type Payload struct {
	r    io.ReaderAt
	off  int64
	size int64
}

// NewPayload returns the payload of size bytes of r starting at off.
func NewPayload(r io.ReaderAt, off, size int64) Payload {
	return Payload{r: r, off: off, size: size}
}

// BytesPayload returns a payload of b.
func BytesPayload(b []byte) Payload {
	return Payload{r: bytesReaderAt(b), size: int64(len(b))}
}

// Size is the payload's length in bytes.
func (p Payload) Size() int64 { return p.size }

// Reader returns a fresh reader positioned at the payload's first byte.
func (p Payload) Reader() *io.SectionReader {
	r := p.r
	if r == nil {
		r = bytesReaderAt(nil)
	}
	return io.NewSectionReader(r, p.off, p.size)
}

// bytesReaderAt reads from a byte slice; unlike bytes.Reader it has no
// position, so one slice can back many concurrent section readers.
type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
