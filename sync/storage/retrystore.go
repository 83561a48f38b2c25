package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// ErrChanged is the underlying error (Error.Err, of kind ErrTransient) of a
// read that a WithRetry store could not resume because the object was
// replaced since the read began: the bytes already read belong to the old
// version. Reading the object again from its start may succeed.
var ErrChanged = errors.New("the object changed while it was read")

// WithRetry returns s with every request retried under r, after restic's
// backend/retry and kopia's blob/retrying: a consumer of a Store wraps it
// once where it takes the store (checkpoint.Open, checkpoint.GC, a transfer's
// Pull and Push, doctor's round trip), and no call site retries on its own.
// A store that WithRetry returned is not wrapped again: its policy is
// replaced by r, since retries stacked on retries multiply.
//
// What is retried, and how:
//
//   - Put sends the payload again (a Payload can be re-read). A conditional
//     Put is retried like any other; if a try landed and only its response
//     was lost, the next try fails with ErrPreconditionFailed (or
//     ErrNotFound), exactly as if another writer had won, so a caller of a
//     conditional Put must read the object back to tell the two apart.
//   - Get retries until it has a body, and the body resumes a read that
//     fails mid-stream with a ranged Get from the first byte not yet read,
//     after checking that the object is still the same version (same ETag
//     and size); if it is not, the read fails with ErrChanged. Each run of
//     failures without a byte read in between has the policy's tries.
//   - List starts again after a failed page and skips the keys it already
//     handed to fn (keys come in ascending order), so fn sees each object
//     once; an error from fn is returned at once, never retried.
//   - Stat and Delete (deleting a missing key is not an error) are retried
//     as they are.
//   - NewUpload, and the Part, Complete and Abort of the upload it returns,
//     are retried each on its own; sending a part again replaces it. A
//     Complete whose first try landed with its response lost fails its
//     retry (the upload is gone), as before.
func WithRetry(s Store, r Retry) Store {
	if rs, ok := s.(*retryStore); ok {
		s = rs.inner
	}
	return &retryStore{inner: s, retry: r}
}

// retryStore is a Store whose requests are retried; see WithRetry.
type retryStore struct {
	inner Store
	retry Retry
}

func (s *retryStore) String() string { return s.inner.String() }

func (s *retryStore) Put(ctx context.Context, key string, p Payload, opts PutOptions) (info ObjectInfo, err error) {
	err = s.retry.Do(ctx, func(ctx context.Context) error {
		info, err = s.inner.Put(ctx, key, p, opts)
		return err
	})
	return info, err
}

func (s *retryStore) Stat(ctx context.Context, key string) (info ObjectInfo, err error) {
	err = s.retry.Do(ctx, func(ctx context.Context) error {
		info, err = s.inner.Stat(ctx, key)
		return err
	})
	return info, err
}

func (s *retryStore) Delete(ctx context.Context, key string) error {
	return s.retry.Do(ctx, func(ctx context.Context) error { return s.inner.Delete(ctx, key) })
}

func (s *retryStore) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	var (
		last   string // the last key handed to fn
		handed bool   // whether fn was called at all
		after  string // a retry skips the keys up to this one: fn had them
		skip   bool
		fnErr  error
	)
	visit := func(o ObjectInfo) error {
		if skip && o.Key <= after {
			return nil
		}
		if err := fn(o); err != nil {
			fnErr = err
			return err
		}
		last, handed = o.Key, true
		return nil
	}
	for try := 1; ; try++ {
		before := last
		err := s.inner.List(ctx, prefix, visit)
		if fnErr != nil {
			return fnErr
		}
		if err == nil || !IsRetryable(err) || ctx.Err() != nil {
			return err
		}
		if last != before {
			try = 1 // this try got further: the next has the whole policy
		}
		if err := s.retry.pause(ctx, try, err); err != nil {
			return err
		}
		after, skip = last, handed
	}
}

func (s *retryStore) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, ObjectInfo, error) {
	var (
		rc   io.ReadCloser
		info ObjectInfo
	)
	err := s.retry.Do(ctx, func(ctx context.Context) (err error) {
		rc, info, err = s.inner.Get(ctx, key, offset, length)
		return err
	})
	if err != nil {
		return nil, info, err
	}
	left := length // bytes the body still owes; -1: up to the end, size unknown
	if info.Size >= 0 && (length < 0 || offset+length > info.Size) {
		left = max(info.Size-offset, 0)
	}
	return &resumingBody{s: s, ctx: ctx, key: key, rc: rc, info: info, next: offset, left: left, tries: 1}, info, nil
}

// resumingBody is a Get body that resumes after a retryable read error; see
// WithRetry.
type resumingBody struct {
	s    *retryStore
	ctx  context.Context
	key  string
	rc   io.ReadCloser // nil after a failure, until resume opens another
	info ObjectInfo    // the object as the first Get saw it
	next int64         // the offset of the next byte to read
	left int64         // bytes still owed; -1: up to the end of the object
	// tries counts the tries of the current run of failures, the one that
	// opened the current body included; read says whether that body has
	// given any byte (which ends the run).
	tries int
	read  bool
	err   error // the error the body ended with
}

func (b *resumingBody) Read(p []byte) (int, error) {
	switch {
	case b.err != nil:
		return 0, b.err
	case b.left == 0:
		return 0, io.EOF
	case len(p) == 0:
		return 0, nil
	case b.left > 0 && int64(len(p)) > b.left:
		p = p[:b.left]
	}
	for {
		if b.rc == nil {
			if err := b.resume(); err != nil {
				b.err = err
				return 0, err
			}
		}
		n, err := b.rc.Read(p)
		b.next += int64(n)
		if b.left > 0 {
			b.left -= int64(n)
		}
		b.read = b.read || n > 0
		switch {
		case err == nil:
			return n, nil
		case err == io.EOF && b.left <= 0:
			b.left = 0
			return n, io.EOF
		case err == io.EOF:
			err = &Error{Op: "get", Key: b.key, Kind: ErrTransient, Err: io.ErrUnexpectedEOF}
		}
		if !IsRetryable(err) || b.ctx.Err() != nil {
			b.err = err
			return n, err
		}
		b.rc.Close()
		b.rc = nil
		if b.read {
			b.tries, b.read = 1, false // a new run of failures
		}
		if err := b.s.retry.pause(b.ctx, b.tries, err); err != nil {
			b.err = err
			return n, err
		}
		b.tries++
		if n > 0 {
			return n, nil // the next Read resumes
		}
	}
}

// resume opens the rest of the object, retrying; the wait before it has
// been served.
func (b *resumingBody) resume() error {
	for {
		rc, info, err := b.s.inner.Get(b.ctx, b.key, b.next, b.left)
		if err == nil {
			if info.ETag != b.info.ETag || info.Size != b.info.Size || b.info.ETag == "" && !info.LastModified.Equal(b.info.LastModified) {
				rc.Close()
				return &Error{Op: "get", Key: b.key, Kind: ErrTransient,
					Err: fmt.Errorf("%w after %d bytes (ETag %s, size %d; was %s, %d)", ErrChanged, b.next, info.ETag, info.Size, b.info.ETag, b.info.Size)}
			}
			b.rc = rc
			return nil
		}
		if !IsRetryable(err) || b.ctx.Err() != nil {
			return err
		}
		if err := b.s.retry.pause(b.ctx, b.tries, err); err != nil {
			return err
		}
		b.tries++
	}
}

func (b *resumingBody) Close() error {
	if b.rc == nil {
		return nil
	}
	err := b.rc.Close()
	b.rc = nil
	return err
}

func (s *retryStore) NewUpload(ctx context.Context, key string) (up Upload, err error) {
	err = s.retry.Do(ctx, func(ctx context.Context) error {
		up, err = s.inner.NewUpload(ctx, key)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &retryUpload{inner: up, retry: s.retry}, nil
}

// retryUpload is an Upload whose requests are retried; see WithRetry.
type retryUpload struct {
	inner Upload
	retry Retry
}

func (u *retryUpload) Part(ctx context.Context, n int, offset int64, p Payload) (part CompletedPart, err error) {
	err = u.retry.Do(ctx, func(ctx context.Context) error {
		part, err = u.inner.Part(ctx, n, offset, p)
		return err
	})
	return part, err
}

func (u *retryUpload) Complete(ctx context.Context, parts []CompletedPart) (info ObjectInfo, err error) {
	err = u.retry.Do(ctx, func(ctx context.Context) error {
		info, err = u.inner.Complete(ctx, parts)
		return err
	})
	return info, err
}

func (u *retryUpload) Abort(ctx context.Context) error {
	return u.retry.Do(ctx, func(ctx context.Context) error { return u.inner.Abort(ctx) })
}
