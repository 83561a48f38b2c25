// Package storetest is the conformance suite that every storage.Store driver
// passes. A driver's test hands Run a constructor and nothing else:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storage.Store { return newStore(t) })
//	}
//
// Each subtest asks for a fresh, empty store.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/batonrun/baton/sync/storage"
)

// BigObjectSize is the size of the large round-trip object (300 MiB).
const BigObjectSize = 300 << 20

// Run runs the whole suite against stores made by newStore.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Store)
	}{
		{"PutGet", testPutGet},
		{"RangedGet", testRangedGet},
		{"EmptyObject", testEmptyObject},
		{"OddKeys", testOddKeys},
		{"InvalidKeys", testInvalidKeys},
		{"NotFound", testNotFound},
		{"Delete", testDelete},
		{"ListPrefixAndOrder", testListPrefixAndOrder},
		{"ListPagination", testListPagination},
		{"CreateIfAbsentRace", testCreateIfAbsentRace},
		{"ReplaceIfMatch", testReplaceIfMatch},
		{"ReplaceIfMatchRace", testReplaceIfMatchRace},
		{"Multipart", testMultipart},
		{"MultipartAbort", testMultipartAbort},
		{"BigObject", testBigObject},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

func put(t *testing.T, s storage.Store, key string, data []byte) storage.ObjectInfo {
	t.Helper()
	info, err := s.Put(t.Context(), key, storage.BytesPayload(data), storage.PutOptions{})
	if err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
	if info.Size != int64(len(data)) || info.ETag == "" {
		t.Fatalf("put %q returned %+v, want size %d and an ETag", key, info, len(data))
	}
	return info
}

func get(t *testing.T, s storage.Store, key string, off, n int64) []byte {
	t.Helper()
	rc, _, err := s.Get(t.Context(), key, off, n)
	if err != nil {
		t.Fatalf("get %q [%d,+%d): %v", key, off, n, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return b
}

func wantKind(t *testing.T, what string, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("%s: got error %v, want one wrapping %q", what, err, kind)
	}
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

func testPutGet(t *testing.T, s storage.Store) {
	data := randomBytes(1, 100_000)
	put(t, s, "a/b/c.bin", data)
	if got := get(t, s, "a/b/c.bin", 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("get returned %d bytes that differ from the %d put", len(got), len(data))
	}
	info, err := s.Stat(t.Context(), "a/b/c.bin")
	if err != nil {
		t.Fatal(err)
	}
	if info.Key != "a/b/c.bin" || info.Size != int64(len(data)) || info.ETag == "" || info.LastModified.IsZero() {
		t.Fatalf("stat = %+v", info)
	}
	// Replacing changes content and ETag.
	data2 := randomBytes(2, 5000)
	info2 := put(t, s, "a/b/c.bin", data2)
	if info2.ETag == info.ETag {
		t.Fatalf("ETag %q did not change when the object was replaced", info.ETag)
	}
	if got := get(t, s, "a/b/c.bin", 0, -1); !bytes.Equal(got, data2) {
		t.Fatal("replaced object reads back wrong")
	}
}

func testRangedGet(t *testing.T, s storage.Store) {
	data := randomBytes(3, 10_000)
	put(t, s, "r", data)
	cases := []struct {
		off, n int64
		want   []byte
	}{
		{0, 1, data[:1]},
		{1234, 1000, data[1234:2234]},
		{9000, -1, data[9000:]},
		{9990, 100, data[9990:]}, // clipped at the end
		{0, 10_000, data},
	}
	for _, c := range cases {
		rc, info, err := s.Get(t.Context(), "r", c.off, c.n)
		if err != nil {
			t.Fatalf("get [%d,+%d): %v", c.off, c.n, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read [%d,+%d): %v", c.off, c.n, err)
		}
		if !bytes.Equal(got, c.want) {
			t.Errorf("get [%d,+%d) gave %d bytes, want %d (equal content: %v)", c.off, c.n, len(got), len(c.want), bytes.Equal(got, c.want))
		}
		if info.Size != int64(len(data)) {
			t.Errorf("get [%d,+%d) described the object as %d bytes, want the whole %d", c.off, c.n, info.Size, len(data))
		}
	}
}

func testEmptyObject(t *testing.T, s storage.Store) {
	put(t, s, "empty", nil)
	if got := get(t, s, "empty", 0, -1); len(got) != 0 {
		t.Fatalf("empty object read back %d bytes", len(got))
	}
	info, err := s.Stat(t.Context(), "empty")
	if err != nil || info.Size != 0 {
		t.Fatalf("stat empty = %+v, %v", info, err)
	}
	var n int
	if err := s.List(t.Context(), "", func(o storage.ObjectInfo) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("list found %d objects (err %v), want the empty one", n, err)
	}
}

func testOddKeys(t *testing.T, s storage.Store) {
	keys := []string{
		"with space/and more spaces.txt",
		"ünïcødé/файл/文件.bin",
		"plus+equals=amp&percent%20.x",
		"emoji 🚀/q?uery#hash",
		"trailing.dot.",
	}
	for i, k := range keys {
		put(t, s, k, []byte(fmt.Sprint(i)))
	}
	for i, k := range keys {
		if got := string(get(t, s, k, 0, -1)); got != fmt.Sprint(i) {
			t.Errorf("key %q read back %q, want %q", k, got, fmt.Sprint(i))
		}
	}
	var listed []string
	if err := s.List(t.Context(), "", func(o storage.ObjectInfo) error { listed = append(listed, o.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Fatalf("list = %q, want %q", listed, want)
	}
}

func testInvalidKeys(t *testing.T, s storage.Store) {
	for _, k := range []string{"", "/abs", "a/../b", "..", "a//b", "./a", "dir/"} {
		_, err := s.Put(t.Context(), k, storage.BytesPayload([]byte("x")), storage.PutOptions{})
		wantKind(t, fmt.Sprintf("put %q", k), err, storage.ErrInvalid)
	}
}

func testNotFound(t *testing.T, s storage.Store) {
	_, _, err := s.Get(t.Context(), "missing", 0, -1)
	wantKind(t, "get missing", err, storage.ErrNotFound)
	_, _, err = s.Get(t.Context(), "missing", 10, 10)
	wantKind(t, "ranged get missing", err, storage.ErrNotFound)
	_, err = s.Stat(t.Context(), "missing")
	wantKind(t, "stat missing", err, storage.ErrNotFound)
	_, err = s.Put(t.Context(), "missing", storage.BytesPayload([]byte("x")), storage.PutOptions{IfMatch: "0123456789abcdef"})
	if !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("conditional replace of a missing object: got %v, want not found or precondition failed", err)
	}
	if _, err := s.Stat(t.Context(), "missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a failed conditional replace created the object (stat: %v)", err)
	}
}

func testDelete(t *testing.T, s storage.Store) {
	put(t, s, "d/x", []byte("x"))
	put(t, s, "d/y", []byte("y"))
	if err := s.Delete(t.Context(), "d/x"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Stat(t.Context(), "d/x")
	wantKind(t, "stat deleted", err, storage.ErrNotFound)
	if err := s.Delete(t.Context(), "d/x"); err != nil {
		t.Fatalf("deleting a missing key: %v", err)
	}
	if got := string(get(t, s, "d/y", 0, -1)); got != "y" {
		t.Fatalf("neighbour of a deleted object reads %q", got)
	}
}

func testListPrefixAndOrder(t *testing.T, s storage.Store) {
	keys := []string{"p/a", "p/b/c", "p/b/d", "p.x", "p/ab", "q/a", "pa"}
	for _, k := range keys {
		put(t, s, k, []byte(k))
	}
	cases := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"p.x", "p/a", "p/ab", "p/b/c", "p/b/d", "pa", "q/a"}},
		{"p/", []string{"p/a", "p/ab", "p/b/c", "p/b/d"}},
		{"p/a", []string{"p/a", "p/ab"}},
		{"p/b/", []string{"p/b/c", "p/b/d"}},
		{"nothing/", nil},
	}
	for _, c := range cases {
		var got []string
		err := s.List(t.Context(), c.prefix, func(o storage.ObjectInfo) error {
			if o.Size != int64(len(o.Key)) || o.ETag == "" {
				return fmt.Errorf("listed %+v: wrong size or no ETag", o)
			}
			got = append(got, o.Key)
			return nil
		})
		if err != nil {
			t.Fatalf("list %q: %v", c.prefix, err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("list %q = %q, want %q", c.prefix, got, c.want)
		}
	}
	stop := errors.New("stop")
	var n int
	err := s.List(t.Context(), "", func(storage.ObjectInfo) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("list did not stop on the callback's error: err %v after %d calls", err, n)
	}
}

func testListPagination(t *testing.T, s storage.Store) {
	const n = 1100 // past S3's page of 1,000 keys
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("many/%05d", i))
	}
	parallel(t, 16, len(want), func(ctx context.Context, i int) error {
		_, err := s.Put(ctx, want[i], storage.BytesPayload([]byte{byte(i)}), storage.PutOptions{})
		return err
	})
	var got []string
	if err := s.List(t.Context(), "many/", func(o storage.ObjectInfo) error { got = append(got, o.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %d keys, want %d in order", len(got), len(want))
	}
}

func testCreateIfAbsentRace(t *testing.T, s storage.Store) {
	const writers, rounds = 32, 3
	for round := range rounds {
		key := fmt.Sprintf("lease-%d.json", round)
		winners := race(t, writers, func(ctx context.Context, i int) error {
			_, err := s.Put(ctx, key, storage.BytesPayload([]byte(fmt.Sprintf("writer %d", i))), storage.PutOptions{IfAbsent: true})
			return err
		})
		if len(winners) != 1 {
			t.Fatalf("round %d: %d of %d create-only writers won (%v), want exactly 1", round, len(winners), writers, winners)
		}
		if got, want := string(get(t, s, key, 0, -1)), fmt.Sprintf("writer %d", winners[0]); got != want {
			t.Fatalf("round %d: object holds %q, but the winner was %q", round, got, want)
		}
	}
}

func testReplaceIfMatch(t *testing.T, s storage.Store) {
	v1 := put(t, s, "latest.json", []byte("v1"))
	v2, err := s.Put(t.Context(), "latest.json", storage.BytesPayload([]byte("v2")), storage.PutOptions{IfMatch: v1.ETag})
	if err != nil {
		t.Fatalf("replace with the current ETag: %v", err)
	}
	_, err = s.Put(t.Context(), "latest.json", storage.BytesPayload([]byte("v3")), storage.PutOptions{IfMatch: v1.ETag})
	wantKind(t, "replace with a stale ETag", err, storage.ErrPreconditionFailed)
	if got := string(get(t, s, "latest.json", 0, -1)); got != "v2" {
		t.Fatalf("after a refused replace the object holds %q, want v2", got)
	}
	_, err = s.Put(t.Context(), "latest.json", storage.BytesPayload([]byte("v4")), storage.PutOptions{IfAbsent: true})
	wantKind(t, "create-only over an existing object", err, storage.ErrPreconditionFailed)
	if info, err := s.Stat(t.Context(), "latest.json"); err != nil || info.ETag != v2.ETag {
		t.Fatalf("stat after refused writes = %+v, %v; want ETag %q", info, err, v2.ETag)
	}
}

func testReplaceIfMatchRace(t *testing.T, s storage.Store) {
	const writers = 16
	base := put(t, s, "cas", []byte("base"))
	won := race(t, writers, func(ctx context.Context, i int) error {
		_, err := s.Put(ctx, "cas", storage.BytesPayload([]byte(fmt.Sprint(i))), storage.PutOptions{IfMatch: base.ETag})
		return err
	})
	if len(won) != 1 {
		t.Fatalf("%d of %d writers holding the same ETag replaced the object (%v), want exactly 1", len(won), writers, won)
	}
}

func testMultipart(t *testing.T, s storage.Store) {
	data := randomBytes(4, 2*storage.MinPartSize+1<<20)
	up, err := s.NewUpload(t.Context(), "big/multi.bin")
	if err != nil {
		t.Fatal(err)
	}
	offsets := []int64{0, storage.MinPartSize, 2 * storage.MinPartSize, int64(len(data))}
	parts := make([]storage.CompletedPart, 3)
	// Send the parts concurrently, the last one first.
	parallel(t, 3, 3, func(ctx context.Context, i int) error {
		n := 3 - i
		off, end := offsets[n-1], offsets[n]
		p, err := up.Part(ctx, n, off, storage.NewPayload(bytes.NewReader(data), off, end-off))
		parts[n-1] = p
		return err
	})
	if _, err := s.Stat(t.Context(), "big/multi.bin"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("object visible before the upload completed (stat: %v)", err)
	}
	info, err := up.Complete(t.Context(), parts)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(data)) {
		t.Fatalf("completed object is %d bytes, want %d", info.Size, len(data))
	}
	if got := get(t, s, "big/multi.bin", 0, -1); !bytes.Equal(got, data) {
		t.Fatal("multipart object reads back wrong")
	}
}

func testMultipartAbort(t *testing.T, s storage.Store) {
	up, err := s.NewUpload(t.Context(), "aborted")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Part(t.Context(), 1, 0, storage.BytesPayload([]byte("part"))); err != nil {
		t.Fatal(err)
	}
	if err := up.Abort(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, err = s.Stat(t.Context(), "aborted")
	wantKind(t, "stat after abort", err, storage.ErrNotFound)
	var n int
	if err := s.List(t.Context(), "", func(storage.ObjectInfo) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("list after abort found %d objects (err %v)", n, err)
	}
}

func testBigObject(t *testing.T, s storage.Store) {
	path := filepath.Join(t.TempDir(), "big")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src := rand.NewChaCha8([32]byte{9})
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), src, BigObjectSize); err != nil {
		t.Fatal(err)
	}
	want := h.Sum(nil)
	if _, err := s.Put(t.Context(), "big/300MiB", storage.NewPayload(f, 0, BigObjectSize), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	rc, info, err := s.Get(t.Context(), "big/300MiB", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h.Reset()
	n, err := io.Copy(h, rc)
	if err != nil {
		t.Fatal(err)
	}
	if n != BigObjectSize || info.Size != BigObjectSize || !bytes.Equal(h.Sum(nil), want) {
		t.Fatalf("300 MiB round trip: read %d bytes (info says %d), hash equal: %v", n, info.Size, bytes.Equal(h.Sum(nil), want))
	}
}

// race runs the conditional writes put(ctx, 0) to put(ctx, writers-1) all at
// once and returns the writers whose write took effect. A write refused with
// ErrPreconditionFailed lost the race; any other error fails t.
func race(t *testing.T, writers int, put func(ctx context.Context, i int) error) []int {
	t.Helper()
	var mu sync.Mutex
	var won []int
	parallel(t, writers, writers, func(ctx context.Context, i int) error {
		err := put(ctx, i)
		switch {
		case err == nil:
			mu.Lock()
			won = append(won, i)
			mu.Unlock()
			return nil
		case errors.Is(err, storage.ErrPreconditionFailed):
			return nil
		}
		return err
	})
	return won
}

// parallel runs fn(i) for i in [0,n) on up to workers goroutines, started
// together, and fails the test with the first error.
func parallel(t *testing.T, workers, n int, fn func(ctx context.Context, i int) error) {
	t.Helper()
	ctx := t.Context()
	start := make(chan struct{})
	next := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			<-start
			for i := range next {
				if err := fn(ctx, i); err != nil {
					errs <- err
				}
			}
		})
	}
	close(start)
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	var all []string
	for err := range errs {
		all = append(all, err.Error())
	}
	if len(all) > 0 {
		t.Fatalf("%d of %d calls failed; first: %s", len(all), n, strings.Join(all[:1], ""))
	}
}
