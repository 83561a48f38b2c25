package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/batonrun/baton/sync/faults"
	"github.com/batonrun/baton/sync/file"
	"github.com/batonrun/baton/sync/storage"
)

// noWait retries at once: these tests count tries, they do not wait.
var noWait = storage.Retry{Attempts: 4, UnreachableAttempts: 2, Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }}

// fileStore returns a file store that holds objects.
func fileStore(t *testing.T, objects map[string][]byte) storage.Store {
	t.Helper()
	s, err := file.New(t.TempDir())
	for key, b := range objects {
		if err == nil {
			_, err = s.Put(t.Context(), key, storage.BytesPayload(b), storage.PutOptions{})
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func get(s storage.Store, ctx context.Context, key string, off, n int64) ([]byte, error) {
	rc, _, err := s.Get(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// TestWithRetryResumesACutBody cuts every body after a few bytes: the read
// resumes where it stopped, whole ranges and open-ended ones alike, and
// each cut costs one ranged Get, not a read from the start.
func TestWithRetryResumesACutBody(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 100)
	inner := fileStore(t, map[string][]byte{"k": data})
	cases := []struct {
		off, n int64
		want   []byte
	}{
		{0, -1, data},
		{17, -1, data[17:]},
		{100, 333, data[100:433]},
		{990, 50, data[990:]}, // a range past the end reads to the end
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%d+%d", c.off, c.n), func(t *testing.T) {
			f := faults.Wrap(inner, faults.Rule{Op: "get", ShortRead: 7})
			got, err := get(storage.WithRetry(f, noWait), t.Context(), "k", c.off, c.n)
			if err != nil || !bytes.Equal(got, c.want) {
				t.Fatalf("read %d bytes, %v; want %d bytes", len(got), err, len(c.want))
			}
			if want := (len(c.want) + 6) / 7; f.Calls("get") != want {
				t.Fatalf("%d gets for %d bytes cut every 7, want %d", f.Calls("get"), len(c.want), want)
			}
		})
	}
}

// TestWithRetryBodyGivesUp: a body cut before its first byte, again and
// again, gives up after the policy's tries.
func TestWithRetryBodyGivesUp(t *testing.T) {
	inner := fileStore(t, map[string][]byte{"k": []byte("abcdef")})
	f := faults.Wrap(inner,
		faults.Rule{Op: "get", ShortRead: 2, Times: 1},
		faults.Rule{Op: "get", After: 1, Err: faults.Transient})
	got, err := get(storage.WithRetry(f, noWait), t.Context(), "k", 0, -1)
	if !errors.Is(err, storage.ErrTransient) || string(got) != "ab" {
		t.Fatalf("read %q, %v; want \"ab\" and a transient error", got, err)
	}
	// The first Get opened the body, which read 2 bytes and was cut: a
	// new run of failures, whose tries are that one and 3 Gets.
	if n := f.Calls("get"); n != 1+noWait.Attempts-1 {
		t.Fatalf("%d gets, want %d", n, noWait.Attempts)
	}
}

// changingStore replaces the object under its key before each Get but the
// first: a resumed read must not splice two versions.
type changingStore struct {
	storage.Store
	key   string
	gets  int
	bytes []byte
}

func (c *changingStore) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, storage.ObjectInfo, error) {
	if c.gets++; c.gets > 1 {
		if _, err := c.Store.Put(ctx, c.key, storage.BytesPayload(c.bytes), storage.PutOptions{}); err != nil {
			return nil, storage.ObjectInfo{}, err
		}
	}
	return c.Store.Get(ctx, key, off, n)
}

func TestWithRetryRefusesToSpliceVersions(t *testing.T) {
	inner := fileStore(t, map[string][]byte{"k": []byte("old version")})
	f := faults.Wrap(&changingStore{Store: inner, key: "k", bytes: []byte("new version, longer")},
		faults.Rule{Op: "get", ShortRead: 4, Times: 1})
	got, err := get(storage.WithRetry(f, noWait), t.Context(), "k", 0, -1)
	if !errors.Is(err, storage.ErrChanged) || !errors.Is(err, storage.ErrTransient) {
		t.Fatalf("read %q, %v; want ErrChanged (transient)", got, err)
	}
	if string(got) != "old " {
		t.Fatalf("read %q before the error, want only the old version's bytes", got)
	}
}

// TestWithRetryListResumes cuts a listing after 2 objects, twice: fn sees
// every object once, in order, and an error of fn's own is not retried.
func TestWithRetryListResumes(t *testing.T) {
	objects := map[string][]byte{}
	var want []string
	for i := range 7 {
		key := fmt.Sprintf("p/%d", i)
		objects[key] = []byte{byte(i)}
		want = append(want, key)
	}
	inner := fileStore(t, objects)
	f := faults.Wrap(inner,
		faults.Rule{Op: "list", ShortRead: 2, Times: 2},
		faults.Rule{Op: "list", After: 2, Times: 1, Err: faults.Transient})
	s := storage.WithRetry(f, noWait)
	var got []string
	if err := s.List(t.Context(), "p/", func(o storage.ObjectInfo) error { got = append(got, o.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	if f.Calls("list") != 4 {
		t.Fatalf("%d listings, want 4 (2 cut, 1 failed, 1 whole)", f.Calls("list"))
	}

	stop := &storage.Error{Op: "get", Kind: storage.ErrTransient} // retryable, but fn's
	calls := f.Calls("list")
	err := s.List(t.Context(), "p/", func(storage.ObjectInfo) error { return stop })
	if err != stop || f.Calls("list") != calls+1 {
		t.Fatalf("fn's error came back as %v after %d listings, want it as is after 1", err, f.Calls("list")-calls)
	}
}

// TestWithRetryConditionalPut: a create-only Put whose response was lost is
// retried, and the retry fails its condition, as if another writer had won;
// callers read the object back to tell (see checkpoint's lease and commit).
func TestWithRetryConditionalPut(t *testing.T) {
	inner := fileStore(t, nil)
	f := faults.Wrap(inner, faults.Rule{Op: "put", Times: 1, Err: faults.Transient, LoseResponse: true})
	s := storage.WithRetry(f, noWait)
	_, err := s.Put(t.Context(), "k", storage.BytesPayload([]byte("mine")), storage.PutOptions{IfAbsent: true})
	if !errors.Is(err, storage.ErrPreconditionFailed) || f.Calls("put") != 2 {
		t.Fatalf("%v after %d puts, want ErrPreconditionFailed after 2", err, f.Calls("put"))
	}
	if got, _ := get(inner, t.Context(), "k", 0, -1); string(got) != "mine" {
		t.Fatalf("stored %q, want the first try's write", got)
	}
}

// TestWithRetryUnreachableCap: an unreachable endpoint gets
// UnreachableAttempts tries, not Attempts.
func TestWithRetryUnreachableCap(t *testing.T) {
	f := faults.Wrap(fileStore(t, nil), faults.Rule{Err: faults.Unreachable})
	_, err := storage.WithRetry(f, noWait).Stat(t.Context(), "k")
	if !errors.Is(err, storage.ErrUnreachable) || f.Calls("stat") != noWait.UnreachableAttempts {
		t.Fatalf("%v after %d tries, want unreachable after %d", err, f.Calls("stat"), noWait.UnreachableAttempts)
	}
}

// TestWithRetryIsNotStacked: wrapping a wrapped store replaces its policy;
// the tries do not multiply.
func TestWithRetryIsNotStacked(t *testing.T) {
	f := faults.Wrap(fileStore(t, nil), faults.Rule{Op: "delete", Err: faults.Transient})
	outer := noWait
	outer.Attempts = 3
	err := storage.WithRetry(storage.WithRetry(f, noWait), outer).Delete(t.Context(), "k")
	if !errors.Is(err, storage.ErrTransient) || f.Calls("delete") != 3 {
		t.Fatalf("%v after %d tries, want 3 (not %d)", err, f.Calls("delete"), 3*noWait.Attempts)
	}
}

// TestWithRetryUpload: the upload's parts and its completion are retried
// each on its own, and a part is sent again from its payload.
func TestWithRetryUpload(t *testing.T) {
	inner := fileStore(t, nil)
	f := faults.Wrap(inner,
		faults.Rule{Op: "upload", Times: 1, Err: faults.Transient},
		faults.Rule{Op: "upload.part", Times: 2, Err: faults.Transient},
		faults.Rule{Op: "upload.complete", Times: 1, Err: faults.Transient})
	s := storage.WithRetry(f, noWait)
	ctx := t.Context()
	a, b := bytes.Repeat([]byte{'a'}, storage.MinPartSize), []byte("tail")
	up, err := s.NewUpload(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	p2, err := up.Part(ctx, 2, int64(len(a)), storage.BytesPayload(b))
	if err != nil {
		t.Fatal(err)
	}
	p1, err := up.Part(ctx, 1, 0, storage.BytesPayload(a))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Complete(ctx, []storage.CompletedPart{p1, p2}); err != nil {
		t.Fatal(err)
	}
	got, err := get(inner, ctx, "big", 0, -1)
	if err != nil || !bytes.Equal(got, append(a, b...)) {
		t.Fatalf("stored %d bytes, %v; want the %d sent", len(got), err, len(a)+len(b))
	}
	if f.Injected() != 4 {
		t.Fatalf("%d faults fired, want 4", f.Injected())
	}
}
