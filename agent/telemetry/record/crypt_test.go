package record

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/fakeclock"
	"github.com/batonrun/baton/sync/storage"
)

func testKey(t *testing.T) *checkpoint.Key {
	t.Helper()
	b := make([]byte, checkpoint.KeySize)
	rand.Read(b)
	k, err := checkpoint.NewKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// snapshot is every object of the store, by key.
func snapshot(m *memStore) map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for k, o := range m.objs {
		out[k] = string(o.data)
	}
	return out
}

// TestSealedTelemetry records 75 minutes with a key (parts and compacted
// objects of both levels): no object holds a line in the clear; ReadRange
// and Newest read it back with the key and fail in one line without it or
// with another; a keyless Compact leaves every object as it is; a part
// moved under another key does not open; Compact with the key finishes the
// segment.
func TestSealedTelemetry(t *testing.T) {
	t.Parallel()
	key, other := testKey(t), testKey(t)
	clk := fakeclock.New(t0)
	store := newMemStore(clk.Now)
	r, err := New(store, Options{Run: run, Segment: seg, Clock: clk.Now, Tick: make(chan time.Time), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	s := &sim{t: t, clk: clk, r: r, perMinute: 2}
	s.minutes(75)
	if err := r.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Compacted == 0 {
		t.Fatalf("nothing compacted: %+v", st)
	}
	before := snapshot(store)
	levels := map[string]bool{}
	for k, data := range before {
		if o, ok := parseKey(Prefix(run, seg), storeInfo(store, k)); ok {
			levels[o.level] = true
		}
		if !checkpoint.IsSealedObject([]byte(data)) || strings.Contains(data, `"event"`) || strings.Contains(data, `"id"`) {
			t.Errorf("%s is not sealed: %.80q", k, data)
		}
	}
	if !levels[""] || !levels["10m"] || !levels["1h"] {
		t.Errorf("levels stored: %v, want parts, 10m and 1h", levels)
	}

	checkAllKey := func(k *checkpoint.Key) {
		t.Helper()
		lines, err := ReadRange(t.Context(), store, k, run, seg, time.Time{}, time.Time{})
		if err != nil {
			t.Fatalf("read back: %v", err)
		}
		if is, _ := events(t, lines); !equalInts(is, seq(0, s.n)) {
			t.Fatalf("read back %d events, want 0 to %d once each", len(is), s.n-1)
		}
	}
	checkAllKey(key)
	if lines, err := Newest(t.Context(), store, key, run, seg, 10*time.Minute); err != nil || len(lines) == 0 {
		t.Fatalf("newest with the key: %d lines, %v", len(lines), err)
	}

	_, err = ReadRange(t.Context(), store, nil, run, seg, time.Time{}, time.Time{})
	if !errors.Is(err, checkpoint.ErrEncrypted) || strings.Contains(err.Error(), "\n") ||
		!strings.Contains(err.Error(), "run "+run+" is encrypted") {
		t.Errorf("read without the key: %v, want one line saying run %s is encrypted", err, run)
	}
	if _, err := Newest(t.Context(), store, nil, run, seg, time.Hour); !errors.Is(err, checkpoint.ErrEncrypted) {
		t.Errorf("newest without the key: %v", err)
	}
	if _, err := ReadRange(t.Context(), store, other, run, seg, time.Time{}, time.Time{}); !errors.Is(err, checkpoint.ErrWrongKey) ||
		!strings.Contains(err.Error(), "the key does not fit") {
		t.Errorf("read with another key: %v", err)
	}

	// A keyless Compact (baton checkpoint gc) of the finished segment
	// writes and deletes nothing.
	clk.Advance(2 * time.Hour)
	st, err := Compact(t.Context(), store, run, CompactOptions{Now: clk.Now})
	if !errors.Is(err, checkpoint.ErrEncrypted) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "left uncompacted") {
		t.Errorf("compact without the key: %v, want one line: left uncompacted, run encrypted", err)
	}
	if st.Written != 0 || st.Deleted != 0 {
		t.Errorf("compact without the key: %+v, want nothing written or deleted", st)
	}
	if after := snapshot(store); !mapsEqual(before, after) {
		t.Errorf("compact without the key changed the store: %d objects before, %d after", len(before), len(after))
	}

	// Compact with the key: the segment ends as one sealed object.
	st, err = Compact(t.Context(), store, run, CompactOptions{Now: clk.Now, Key: key})
	if err != nil || st.Written == 0 {
		t.Fatalf("compact with the key: %+v, %v", st, err)
	}
	for k, data := range snapshot(store) {
		if !checkpoint.IsSealedObject([]byte(data)) {
			t.Errorf("%s is not sealed after compaction", k)
		}
	}
	checkAllKey(key)

	// An object moved under another name does not open: the associated
	// data names its key.
	objs := snapshot(store)
	var keys []string
	for k := range objs {
		keys = append(keys, k)
	}
	if len(keys) != 1 {
		t.Fatalf("after the last compaction: %v, want one object", keys)
	}
	moved := strings.Replace(keys[0], "-000", "-100", 1)
	mustPut(t, store, moved, []byte(objs[keys[0]]))
	store.Delete(t.Context(), keys[0])
	if _, err := ReadRange(t.Context(), store, key, run, seg, time.Time{}, time.Time{}); err == nil || !strings.Contains(err.Error(), "does not authenticate") {
		t.Errorf("an object moved from %s to %s: %v, want it refused", keys[0], moved, err)
	}
}

// TestSealedRefusesPlain: with a key, a plain object is refused, not read.
func TestSealedRefusesPlain(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(t0)
	store := newMemStore(clk.Now)
	r, err := New(store, Options{Run: run, Segment: seg, Clock: clk.Now, Tick: make(chan time.Time)})
	if err != nil {
		t.Fatal(err)
	}
	s := &sim{t: t, clk: clk, r: r, perMinute: 1}
	s.minutes(3)
	r.Close(t.Context())
	if _, err := ReadRange(t.Context(), store, testKey(t), run, seg, time.Time{}, time.Time{}); err == nil || !strings.Contains(err.Error(), "not encrypted") {
		t.Errorf("plain telemetry read with a key: %v, want it refused", err)
	}
	if _, err := Compact(t.Context(), store, run, CompactOptions{Now: func() time.Time { return clk.Now().Add(time.Hour * 2) }, Key: testKey(t)}); err == nil {
		t.Error("plain telemetry compacted with a key: no error")
	}
}

func storeInfo(m *memStore, key string) storage.ObjectInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.objs[key].info
}

func mustPut(t *testing.T, m *memStore, key string, data []byte) {
	t.Helper()
	if _, err := m.Put(t.Context(), key, storage.BytesPayload(data), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal([]byte(v), []byte(w)) {
			return false
		}
	}
	return true
}
