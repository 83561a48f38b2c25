package s3config

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/batonrun/baton/sync/storage"
)

// Body wraps the body of a GET response that should hold exactly want
// bytes, so that it keeps the promises of storage.Store.Get: a read error
// becomes an *storage.Error of kind ErrTransient (or wraps ctx.Err() once ctx
// is done), and a body that ends before want bytes returns an ErrTransient
// error wrapping io.ErrUnexpectedEOF instead of a silent short read. Bytes
// past want are not returned. A negative want means the length is unknown:
// the body is read to its end.
func Body(ctx context.Context, key string, rc io.ReadCloser, want int64) io.ReadCloser {
	return &body{ctx: ctx, key: key, rc: rc, left: want}
}

type body struct {
	ctx  context.Context
	key  string
	rc   io.ReadCloser
	left int64
	err  error // sticky
}

func (b *body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	known := b.left >= 0
	if known && b.left == 0 {
		b.err = io.EOF
		return 0, io.EOF
	}
	if known && int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	if known {
		b.left -= int64(n)
	}
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, io.EOF) && (b.left == 0 || !known):
		b.err = io.EOF
	case errors.Is(err, io.EOF):
		b.err = Wrap(b.ctx, "get", b.key, storage.ErrTransient,
			fmt.Errorf("body ended %d bytes early: %w", b.left, io.ErrUnexpectedEOF))
	default:
		b.err = Wrap(b.ctx, "get", b.key, storage.ErrTransient, fmt.Errorf("reading body: %w", err))
	}
	if n > 0 && b.err == io.EOF {
		return n, nil // report EOF on the next call, like most readers
	}
	return n, b.err
}

func (b *body) Close() error {
	if err := b.rc.Close(); err != nil && b.err == nil {
		return Wrap(b.ctx, "get", b.key, storage.ErrTransient, err)
	}
	return nil
}

// EmptyRead answers a Get of no bytes at offset of the object that info
// describes (a stat of it): an empty body, which needs no request for the
// bytes, if offset lies within or at the end of the object; ErrInvalid past
// it.
func EmptyRead(key string, offset int64, info storage.ObjectInfo) (io.ReadCloser, storage.ObjectInfo, error) {
	if offset > info.Size {
		return nil, storage.ObjectInfo{}, storage.Errorf("get", key, storage.ErrInvalid, "offset %d outside object of %d bytes", offset, info.Size)
	}
	return io.NopCloser(strings.NewReader("")), info, nil
}

// ETag strips the surrounding quotes (and a weak "W/" mark) that S3 puts
// around ETags.
func ETag(s string) string {
	s = strings.TrimPrefix(s, "W/")
	return strings.Trim(s, `"`)
}

// QuoteETag returns an ETag as an HTTP entity tag, in double quotes.
func QuoteETag(s string) string {
	if strings.HasPrefix(s, `"`) {
		return s
	}
	return `"` + s + `"`
}

// RangeHeader returns the value of a Range header for length bytes from
// offset (length < 0: to the end), or "" for the whole object.
func RangeHeader(offset, length int64) string {
	switch {
	case offset == 0 && length < 0:
		return ""
	case length < 0:
		return fmt.Sprintf("bytes=%d-", offset)
	default:
		return fmt.Sprintf("bytes=%d-%d", offset, offset+length-1)
	}
}

// TotalSize returns the object's full size from a Content-Range header
// ("bytes 0-9/1234"), or false when the header is absent or gives no total.
func TotalSize(contentRange string) (int64, bool) {
	_, total, ok := strings.Cut(contentRange, "/")
	if !ok || total == "*" {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(total), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// CheckRange validates a Get's offset before any request: it must not be
// negative. (Whether it lies within the object only the server knows.)
func CheckRange(key string, offset int64) error {
	if offset < 0 {
		return storage.Errorf("get", key, storage.ErrInvalid, "negative offset %d", offset)
	}
	return nil
}
