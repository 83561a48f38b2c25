package faults_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonrun/baton/sync/faults"
	"github.com/batonrun/baton/sync/file/filetest"
	"github.com/batonrun/baton/sync/storage"
)

func put(t *testing.T, s storage.Store, key, data string) {
	t.Helper()
	if _, err := s.Put(t.Context(), key, storage.BytesPayload([]byte(data)), storage.PutOptions{}); err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
}

func get(ctx context.Context, s storage.Store, key string) (string, error) {
	body, _, err := s.Get(ctx, key, 0, -1)
	if err != nil {
		return "", err
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	return string(b), err
}

// wantInjected checks that err is an injected *storage.Error of the given kind,
// operation and key.
func wantInjected(t *testing.T, err error, kind error, op, key string) {
	t.Helper()
	var e *storage.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v (%T), want a *storage.Error", err, err)
	}
	if !errors.Is(err, kind) || !errors.Is(err, faults.ErrInjected) || e.Op != op || e.Key != key {
		t.Fatalf("got %#v (%v), want an injected %v from %s %q", e, err, kind, op, key)
	}
}

func TestPassThrough(t *testing.T) {
	ctx := t.Context()
	inner := filetest.New(t)
	s := faults.Wrap(inner)
	if got, want := s.String(), "faults("+inner.String()+")"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}

	info, err := s.Put(ctx, "a/b", storage.BytesPayload([]byte("hello")), storage.PutOptions{IfAbsent: true})
	if err != nil || info.Size != 5 {
		t.Fatalf("put: %+v, %v", info, err)
	}
	if _, err := s.Put(ctx, "a/b", storage.BytesPayload([]byte("x")), storage.PutOptions{IfAbsent: true}); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("second create-only put: %v, want ErrPreconditionFailed", err)
	}
	body, _, err := s.Get(ctx, "a/b", 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(body); err != nil || string(b) != "ell" {
		t.Fatalf("ranged get: %q, %v", b, err)
	}
	body.Close()
	if st, err := s.Stat(ctx, "a/b"); err != nil || st.ETag != info.ETag {
		t.Fatalf("stat: %+v, %v, want ETag %q", st, err, info.ETag)
	}
	if _, err := s.Stat(ctx, "missing"); !errors.Is(err, storage.ErrNotFound) || errors.Is(err, faults.ErrInjected) {
		t.Fatalf("stat of a missing key: %v, want a real ErrNotFound", err)
	}

	u, err := s.NewUpload(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	p2, err := u.Part(ctx, 2, 3, storage.BytesPayload([]byte("def")))
	if err != nil {
		t.Fatal(err)
	}
	p1, err := u.Part(ctx, 1, 0, storage.BytesPayload([]byte("abc")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Complete(ctx, []storage.CompletedPart{p1, p2}); err != nil {
		t.Fatal(err)
	}
	if got, err := get(ctx, inner, "big"); err != nil || got != "abcdef" {
		t.Fatalf("completed upload reads %q, %v", got, err)
	}
	u2, err := s.NewUpload(ctx, "aborted")
	if err != nil {
		t.Fatal(err)
	}
	if err := u2.Abort(ctx); err != nil {
		t.Fatal(err)
	}

	var keys []string
	if err := s.List(ctx, "", func(o storage.ObjectInfo) error { keys = append(keys, o.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(keys, ","); got != "a/b,big" {
		t.Fatalf("list = %s", got)
	}
	if err := s.Delete(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	if _, err := inner.Stat(ctx, "a/b"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after delete, stat: %v", err)
	}

	want := map[string]int{
		faults.OpPut: 2, faults.OpGet: 1, faults.OpStat: 2, faults.OpList: 1, faults.OpDelete: 1,
		faults.OpUpload: 2, faults.OpPart: 2, faults.OpComplete: 1, faults.OpAbort: 1,
	}
	total := 0
	for op, n := range want {
		if got := s.Calls(op); got != n {
			t.Errorf("Calls(%q) = %d, want %d", op, got, n)
		}
		total += n
	}
	if got := s.Calls(""); got != total {
		t.Errorf("Calls(\"\") = %d, want %d", got, total)
	}
	if got := s.Injected(); got != 0 {
		t.Errorf("Injected() = %d, want 0", got)
	}
}

func TestErrTimes(t *testing.T) {
	ctx := t.Context()
	inner := filetest.New(t)
	put(t, inner, "k", "v")
	s := faults.Wrap(inner, faults.Rule{Op: "get", Times: 3, Err: faults.Transient})

	for i := range 3 {
		_, err := get(ctx, s, "k")
		wantInjected(t, err, storage.ErrTransient, "get", "k")
		if !storage.IsRetryable(err) {
			t.Fatalf("call %d: %v is not retryable", i+1, err)
		}
	}
	if got, err := get(ctx, s, "k"); err != nil || got != "v" {
		t.Fatalf("4th get: %q, %v", got, err)
	}
	// Other operations are left alone.
	if _, err := s.Stat(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	put(t, s, "k2", "v2")
	if s.Calls("get") != 4 || s.Injected() != 3 {
		t.Fatalf("Calls(get) = %d, Injected() = %d; want 4, 3", s.Calls("get"), s.Injected())
	}
}

func TestErrAfter(t *testing.T) {
	inner := filetest.New(t)
	s := faults.Wrap(inner, faults.Rule{Op: "put", After: 2, Times: 1, Err: storage.ErrPermission})
	var errs []error
	for i := range 4 {
		_, err := s.Put(t.Context(), fmt.Sprint("k", i), storage.BytesPayload(nil), storage.PutOptions{})
		errs = append(errs, err)
	}
	if errs[0] != nil || errs[1] != nil || errs[3] != nil {
		t.Fatalf("errors = %v; want only the third put to fail", errs)
	}
	wantInjected(t, errs[2], storage.ErrPermission, "put", "k2")
	if _, err := inner.Stat(t.Context(), "k2"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the failed put reached the store: stat = %v", err)
	}
	if s.Injected() != 1 {
		t.Fatalf("Injected() = %d, want 1", s.Injected())
	}
}

func TestKindsMapToSentinels(t *testing.T) {
	kinds := map[faults.Kind]error{
		faults.NotFound: storage.ErrNotFound, faults.PreconditionFailed: storage.ErrPreconditionFailed,
		faults.Transient: storage.ErrTransient, faults.Unreachable: storage.ErrUnreachable,
		faults.Auth: storage.ErrAuth, faults.Permission: storage.ErrPermission,
		faults.NoBucket: storage.ErrNoBucket, faults.Invalid: storage.ErrInvalid, faults.IO: storage.ErrIO,
	}
	for k, sentinel := range kinds {
		s := faults.Wrap(filetest.New(t), faults.Rule{Err: k})
		wantInjected(t, s.Delete(t.Context(), "x"), sentinel, "delete", "x")
		if !errors.Is(k, sentinel) || k.Error() != sentinel.Error() {
			t.Errorf("kind %d: Is/Error do not match %v", k, sentinel)
		}
	}
}

func TestOtherErrorReturnedAsIs(t *testing.T) {
	mine := errors.New("my error")
	s := faults.Wrap(filetest.New(t), faults.Rule{Op: "stat", Err: mine})
	if _, err := s.Stat(t.Context(), "k"); err != mine {
		t.Fatalf("stat = %v, want %v as is", err, mine)
	}
}

func TestRetryStopsOnPermanentError(t *testing.T) {
	noSleep := func(context.Context, time.Duration) error { return nil }
	retry := storage.Retry{Attempts: 10, Sleep: noSleep}
	inner := filetest.New(t)
	put(t, inner, "k", "v")

	perm := faults.Wrap(inner, faults.Rule{Op: "get", Err: faults.Permission})
	err := retry.Do(t.Context(), func(ctx context.Context) error { _, err := get(ctx, perm, "k"); return err })
	if !errors.Is(err, storage.ErrPermission) || perm.Calls("get") != 1 {
		t.Fatalf("permanent error: %v after %d calls, want ErrPermission after 1", err, perm.Calls("get"))
	}

	flaky := faults.Wrap(inner, faults.Rule{Op: "get", Times: 3, Err: faults.Transient})
	err = retry.Do(t.Context(), func(ctx context.Context) error { _, err := get(ctx, flaky, "k"); return err })
	if err != nil || flaky.Calls("get") != 4 || flaky.Injected() != 3 {
		t.Fatalf("transient errors: %v after %d calls, %d injected; want success after 4, 3", err, flaky.Calls("get"), flaky.Injected())
	}
}

func TestKeyAndPrefix(t *testing.T) {
	ctx := t.Context()
	s := faults.Wrap(filetest.New(t),
		faults.Rule{Op: "put,delete", Prefix: "ckpt/", Err: faults.IO},
		faults.Rule{Op: "stat", Key: func(k string) bool { return strings.HasSuffix(k, ".lock") }, Err: faults.Unreachable},
	)
	if _, err := s.Put(ctx, "data/x", storage.BytesPayload(nil), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Put(ctx, "ckpt/x", storage.BytesPayload(nil), storage.PutOptions{})
	wantInjected(t, err, storage.ErrIO, "put", "ckpt/x")
	wantInjected(t, s.Delete(ctx, "ckpt/y"), storage.ErrIO, "delete", "ckpt/y")
	if err := s.Delete(ctx, "data/x"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Stat(ctx, "a.lock")
	wantInjected(t, err, storage.ErrUnreachable, "stat", "a.lock")
	if _, err := s.Stat(ctx, "a.data"); !errors.Is(err, storage.ErrNotFound) || errors.Is(err, faults.ErrInjected) {
		t.Fatalf("stat a.data = %v, want a real ErrNotFound", err)
	}
	if s.Injected() != 3 {
		t.Fatalf("Injected() = %d, want 3", s.Injected())
	}
}

// pattern returns which of n stats of s failed, as a string of 'x' and '.'.
func pattern(t *testing.T, s storage.Store, n int) string {
	var b strings.Builder
	for range n {
		_, err := s.Stat(t.Context(), "k")
		switch {
		case err == nil:
			b.WriteByte('.')
		case errors.Is(err, faults.ErrInjected):
			b.WriteByte('x')
		default:
			t.Fatalf("stat: %v", err)
		}
	}
	return b.String()
}

func TestProbIsSeeded(t *testing.T) {
	inner := filetest.New(t)
	put(t, inner, "k", "v")
	rule := func(seed uint64) faults.Rule {
		return faults.Rule{Op: "stat", Prob: 0.3, Seed: seed, Err: faults.Transient}
	}
	a := faults.Wrap(inner, rule(1))
	pa := pattern(t, a, 200)
	pb := pattern(t, faults.Wrap(inner, rule(1)), 200)
	pc := pattern(t, faults.Wrap(inner, rule(2)), 200)
	if pa != pb {
		t.Fatalf("same seed, different faults:\n%s\n%s", pa, pb)
	}
	if pa == pc {
		t.Fatalf("seeds 1 and 2 gave the same faults: %s", pa)
	}
	fired := strings.Count(pa, "x")
	if fired == 0 || fired == 200 || a.Injected() != fired {
		t.Fatalf("Prob 0.3 fired %d of 200 times, Injected() = %d", fired, a.Injected())
	}

	// Times caps the probabilistic rule, After delays it.
	capped := faults.Wrap(inner, faults.Rule{Op: "stat", Prob: 0.5, Seed: 7, After: 10, Times: 5, Err: faults.Transient})
	p := pattern(t, capped, 200)
	if strings.Count(p, "x") != 5 || strings.Contains(p[:10], "x") {
		t.Fatalf("After 10, Times 5: %s", p)
	}
}

func TestShortRead(t *testing.T) {
	ctx := t.Context()
	inner := filetest.New(t)
	data := strings.Repeat("0123456789", 100)
	put(t, inner, "k", data)
	put(t, inner, "small", "abc")
	s := faults.Wrap(inner, faults.Rule{Op: "get", Times: 2, ShortRead: 100})

	got, err := get(ctx, s, "k")
	if got != data[:100] {
		t.Fatalf("short read gave %d bytes, want 100", len(got))
	}
	if !errors.Is(err, storage.ErrTransient) || !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, faults.ErrInjected) {
		t.Fatalf("short read error = %v, want ErrTransient wrapping io.ErrUnexpectedEOF", err)
	}
	if s.Injected() != 1 {
		t.Fatalf("Injected() = %d, want 1", s.Injected())
	}

	// Counted from the offset asked for.
	body, _, err := s.Get(ctx, "k", 50, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(body)
	body.Close()
	if string(b) != data[50:150] || !errors.Is(err, storage.ErrTransient) {
		t.Fatalf("ranged short read: %d bytes, %v", len(b), err)
	}

	// Times is spent: whole bodies again.
	if got, err := get(ctx, s, "k"); err != nil || got != data {
		t.Fatalf("after Times: %d bytes, %v", len(got), err)
	}
	if s.Injected() != 2 {
		t.Fatalf("Injected() = %d, want 2", s.Injected())
	}

	// A body no longer than ShortRead is left alone.
	s2 := faults.Wrap(inner, faults.Rule{Op: "get", ShortRead: 3})
	if got, err := get(ctx, s2, "small"); err != nil || got != "abc" {
		t.Fatalf("short body: %q, %v", got, err)
	}
	if s2.Injected() != 0 {
		t.Fatalf("Injected() = %d for a body that was not cut", s2.Injected())
	}
}

func TestShortList(t *testing.T) {
	inner := filetest.New(t)
	for _, k := range []string{"a", "b", "c", "d"} {
		put(t, inner, k, k)
	}
	s := faults.Wrap(inner, faults.Rule{Op: "list", Times: 1, ShortRead: 2})
	var keys []string
	collect := func(o storage.ObjectInfo) error { keys = append(keys, o.Key); return nil }
	err := s.List(t.Context(), "", collect)
	if got := strings.Join(keys, ""); got != "ab" || !errors.Is(err, storage.ErrTransient) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short list: %q, %v", got, err)
	}
	keys = nil
	if err := s.List(t.Context(), "", collect); err != nil || strings.Join(keys, "") != "abcd" {
		t.Fatalf("second list: %q, %v", keys, err)
	}
	if s.Injected() != 1 {
		t.Fatalf("Injected() = %d, want 1", s.Injected())
	}
}

func TestDelayRespectsContext(t *testing.T) {
	inner := filetest.New(t)
	s := faults.Wrap(inner, faults.Rule{Op: "put", Delay: time.Hour})

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.Put(ctx, "k", storage.BytesPayload([]byte("v")), storage.PutOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("put = %v, want context.Canceled", err)
	}
	if _, err := inner.Stat(t.Context(), "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the cancelled put reached the store: %v", err)
	}

	ctx, cancel = context.WithTimeout(t.Context(), time.Millisecond)
	defer cancel()
	if _, err = s.Put(ctx, "k", storage.BytesPayload([]byte("v")), storage.PutOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("put = %v, want context.DeadlineExceeded", err)
	}
	if s.Injected() != 2 {
		t.Fatalf("Injected() = %d, want 2", s.Injected())
	}
}

func TestDelayThenPass(t *testing.T) {
	inner := filetest.New(t)
	put(t, inner, "k", "v")
	s := faults.Wrap(inner,
		faults.Rule{Op: "get", Times: 1, Delay: time.Millisecond},
		faults.Rule{Op: "get", Times: 1, Delay: time.Millisecond, Err: faults.Transient},
	)
	_, err := get(t.Context(), s, "k")
	wantInjected(t, err, storage.ErrTransient, "get", "k")
	if got, err := get(t.Context(), s, "k"); err != nil || got != "v" {
		t.Fatalf("second get: %q, %v", got, err)
	}
	if s.Injected() != 2 {
		t.Fatalf("Injected() = %d, want 2", s.Injected())
	}
}

func TestLoseResponse(t *testing.T) {
	ctx := t.Context()
	inner := filetest.New(t)
	s := faults.Wrap(inner, faults.Rule{Op: "put", Times: 1, Err: faults.Transient, LoseResponse: true})
	pl := storage.BytesPayload([]byte("v"))
	_, err := s.Put(ctx, "k", pl, storage.PutOptions{IfAbsent: true})
	wantInjected(t, err, storage.ErrTransient, "put", "k")
	if got, err := get(ctx, inner, "k"); err != nil || got != "v" {
		t.Fatalf("the put whose response was lost did not land: %q, %v", got, err)
	}
	// The retry of a create-only put then finds its own object.
	if _, err := s.Put(ctx, "k", pl, storage.PutOptions{IfAbsent: true}); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("retried put = %v, want ErrPreconditionFailed", err)
	}

	g := faults.Wrap(inner, faults.Rule{Op: "get,upload", Err: faults.Unreachable, LoseResponse: true})
	_, err = get(ctx, g, "k")
	wantInjected(t, err, storage.ErrUnreachable, "get", "k")
	_, err = g.NewUpload(ctx, "u")
	wantInjected(t, err, storage.ErrUnreachable, "upload", "u")
}

func TestUploadFaults(t *testing.T) {
	ctx := t.Context()
	inner := filetest.New(t)
	s := faults.Wrap(inner,
		faults.Rule{Op: "upload.part", Times: 1, Err: faults.Transient},
		faults.Rule{Op: "upload.complete", Times: 1, Err: faults.Transient},
		faults.Rule{Op: "upload.abort", Err: faults.IO},
	)
	u, err := s.NewUpload(ctx, "obj")
	if err != nil {
		t.Fatal(err)
	}
	pl := storage.BytesPayload([]byte("abc"))
	_, err = u.Part(ctx, 1, 0, pl)
	wantInjected(t, err, storage.ErrTransient, "upload", "obj")
	part, err := u.Part(ctx, 1, 0, pl)
	if err != nil {
		t.Fatal(err)
	}
	_, err = u.Complete(ctx, []storage.CompletedPart{part})
	wantInjected(t, err, storage.ErrTransient, "upload", "obj")
	if _, err := inner.Stat(ctx, "obj"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("failed Complete reached the store: %v", err)
	}
	if info, err := u.Complete(ctx, []storage.CompletedPart{part}); err != nil || info.Size != 3 {
		t.Fatalf("second Complete: %+v, %v", info, err)
	}
	u2, err := s.NewUpload(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	wantInjected(t, u2.Abort(ctx), storage.ErrIO, "upload", "other")
	if s.Calls("upload.part") != 2 || s.Calls("upload.complete") != 2 || s.Calls("upload") != 2 || s.Injected() != 3 {
		t.Fatalf("counters: part %d, complete %d, upload %d, injected %d",
			s.Calls("upload.part"), s.Calls("upload.complete"), s.Calls("upload"), s.Injected())
	}
}

func TestFirstErrorWins(t *testing.T) {
	s := faults.Wrap(filetest.New(t),
		faults.Rule{Op: "delete", Times: 1, Err: faults.Permission},
		faults.Rule{Err: faults.Transient, Times: 2},
	)
	wantInjected(t, s.Delete(t.Context(), "k"), storage.ErrPermission, "delete", "k")
	// The second rule fired too, but overridden it does not count.
	if s.Injected() != 1 {
		t.Fatalf("Injected() = %d, want 1", s.Injected())
	}
	// Each rule keeps its own count: the second has one firing left.
	wantInjected(t, s.Delete(t.Context(), "k"), storage.ErrTransient, "delete", "k")
	if err := s.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrent(t *testing.T) {
	inner := filetest.New(t)
	put(t, inner, "k", strings.Repeat("x", 1000))
	s := faults.Wrap(inner,
		faults.Rule{Op: "stat", Prob: 0.5, Seed: 3, Err: faults.Transient},
		faults.Rule{Op: "get", Prob: 0.5, Seed: 4, ShortRead: 10},
	)
	const workers, each = 8, 50
	var mu sync.Mutex
	failed := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				_, err1 := s.Stat(t.Context(), "k")
				_, err2 := get(t.Context(), s, "k")
				mu.Lock()
				for _, err := range []error{err1, err2} {
					if errors.Is(err, faults.ErrInjected) {
						failed++
					} else if err != nil {
						t.Errorf("unexpected error: %v", err)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if s.Calls("") != 2*workers*each || s.Injected() != failed || failed == 0 {
		t.Fatalf("Calls = %d, Injected = %d, failures seen = %d", s.Calls(""), s.Injected(), failed)
	}
}

func TestBadRulesPanic(t *testing.T) {
	for name, r := range map[string]faults.Rule{
		"unknown op":         {Op: "gte", Err: faults.Transient},
		"no fault":           {Op: "get"},
		"short read on put":  {Op: "put", ShortRead: 1},
		"short read any op":  {ShortRead: 1},
		"err and short read": {Op: "get", ShortRead: 1, Err: faults.Transient},
		"lose without err":   {Op: "put", Delay: 1, LoseResponse: true},
		"prob above 1":       {Err: faults.Transient, Prob: 1.5},
		"negative times":     {Err: faults.Transient, Times: -1},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("Wrap did not panic")
				}
			}()
			faults.Wrap(filetest.New(t), r)
		})
	}
}

func TestShortReadBodyBytes(t *testing.T) {
	// A body cut exactly at its end is not cut.
	inner := filetest.New(t)
	put(t, inner, "k", "0123456789")
	s := faults.Wrap(inner, faults.Rule{Op: "get", ShortRead: 10})
	body, _, err := s.Get(t.Context(), "k", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, body); err != nil || buf.String() != "0123456789" {
		t.Fatalf("body %q, %v", buf.String(), err)
	}
}
