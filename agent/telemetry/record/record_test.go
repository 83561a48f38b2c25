package record

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonrun/baton/internal/fakeclock"

	"github.com/batonrun/baton/agent/telemetry/host"
	"github.com/batonrun/baton/internal/s3test"
	"github.com/batonrun/baton/sync/faults"
	"github.com/batonrun/baton/sync/file/filetest"
	"github.com/batonrun/baton/sync/s3aws"
	"github.com/batonrun/baton/sync/storage"
)

const (
	run = "llama-ft-7"
	seg = "20260501T120000Z-podalpha"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// event is a record of the tests' own; all events up to 99999 marshal to
// the same length.
type event struct {
	ID string `json:"id"`
}

func (event) RecordType() string { return "event" }

func ev(i int) event { return event{ID: fmt.Sprintf("%05d", i)} }

// readSegment reads every part of the segment back, in key order, and
// returns the keys and the lines.
func readSegment(t *testing.T, store storage.Store) ([]string, []Line) {
	t.Helper()
	var keys []string
	err := store.List(t.Context(), Prefix(run, seg), func(o storage.ObjectInfo) error {
		keys = append(keys, o.Key)
		if p, ok := parseKey(Prefix(run, seg), o); !ok || p.level != "" || p.first != len(keys) {
			t.Errorf("object %s is not part %d", o.Key, len(keys))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	var lines []Line
	for _, k := range keys {
		body, _, err := store.Get(t.Context(), k, 0, -1)
		if err != nil {
			t.Fatalf("get %s: %v", k, err)
		}
		b, err := io.ReadAll(body)
		body.Close()
		if err != nil {
			t.Fatalf("read %s: %v", k, err)
		}
		if len(b) == 0 || b[len(b)-1] != '\n' {
			t.Fatalf("part %s does not end a line: %q", k, b)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			var l Line
			dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&l); err != nil {
				t.Fatalf("%s: line %q: %v", k, sc.Text(), err)
			}
			lines = append(lines, l)
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return keys, lines
}

// events decodes the "event" lines and returns their numbers, in order, and
// the sum of the counts of the "dropped" lines.
func events(t *testing.T, lines []Line) (is []int, dropped int64) {
	t.Helper()
	for _, l := range lines {
		switch l.Type {
		case "event":
			var e event
			if err := json.Unmarshal(l.Data, &e); err != nil {
				t.Fatal(err)
			}
			var i int
			if _, err := fmt.Sscanf(e.ID, "%d", &i); err != nil {
				t.Fatalf("event id %q: %v", e.ID, err)
			}
			is = append(is, i)
		case TypeDropped:
			var d Dropped
			if err := json.Unmarshal(l.Data, &d); err != nil {
				t.Fatal(err)
			}
			dropped += d.Count
		}
	}
	return is, dropped
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// tickTwice sends two ticks: when the second is taken, the flush of the
// first is over (the loop takes one tick at a time).
func tickTwice(tick chan time.Time) {
	tick <- t0
	tick <- t0
}

// TestRoundTrip writes mixed records on a tick and at Close into the file
// store and a real S3 server, and reads them back line by line, in order.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	stores := []struct {
		name string
		open func(t *testing.T) storage.Store
	}{
		{"file", func(t *testing.T) storage.Store { return filetest.New(t) }},
		{"s3", func(t *testing.T) storage.Store {
			srv := s3test.Start(t, s3test.Versitygw)
			s, err := s3aws.New(t.Context(), srv.Config(srv.NewBucket(t), "ckpt"))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			store := st.open(t)
			clk := fakeclock.New(t0)
			tick := make(chan time.Time)
			r, err := New(store, Options{Run: run, Segment: seg, Clock: clk.Now, Tick: tick})
			if err != nil {
				t.Fatal(err)
			}
			reading := host.Reading{Time: t0, CPUPercent: 12.5, Disks: []host.Disk{{Role: "checkpoint", Path: "/ckpt", FreeBytes: 42}}}
			gpus := []map[string]any{{"gpu": 0, "util": 97}, {"gpu": 1, "util": 3}}
			for _, v := range []any{reading, As("gpu", gpus), ev(0)} {
				if err := r.Add(v); err != nil {
					t.Fatal(err)
				}
				clk.Advance(time.Second)
			}
			tickTwice(tick) // part 1
			if keys, _ := readSegment(t, store); len(keys) != 1 {
				t.Fatalf("after a tick: parts %v, want one", keys)
			}
			tickTwice(tick) // nothing new: no part
			if keys, _ := readSegment(t, store); len(keys) != 1 {
				t.Fatalf("after a tick with nothing new: parts %v, want one", keys)
			}
			// The flush of the last tick may still be pending: hold it off
			// while adding, so that the three records share one part.
			r.flushMu.Lock()
			for i := 1; i < 4; i++ {
				if err := r.Add(ev(i)); err != nil {
					r.flushMu.Unlock()
					t.Fatal(err)
				}
			}
			r.flushMu.Unlock()
			if err := r.Close(t.Context()); err != nil { // part 2
				t.Fatalf("close: %v", err)
			}

			keys, lines := readSegment(t, store)
			if len(keys) != 2 {
				t.Fatalf("parts %v, want two", keys)
			}
			var types []string
			for _, l := range lines {
				types = append(types, l.Type)
			}
			if got, want := strings.Join(types, ","), "host,gpu,event,event,event,event"; got != want {
				t.Fatalf("types %s, want %s", got, want)
			}
			if !lines[0].Time.Equal(t0) || !lines[1].Time.Equal(t0.Add(time.Second)) || !lines[3].Time.Equal(t0.Add(3*time.Second)) {
				t.Errorf("times %v %v %v", lines[0].Time, lines[1].Time, lines[3].Time)
			}
			var back host.Reading
			if err := json.Unmarshal(lines[0].Data, &back); err != nil {
				t.Fatal(err)
			}
			if back.CPUPercent != 12.5 || len(back.Disks) != 1 || back.Disks[0].FreeBytes != 42 || !back.Time.Equal(t0) {
				t.Errorf("host reading read back as %+v", back)
			}
			var g []map[string]any
			if err := json.Unmarshal(lines[1].Data, &g); err != nil || len(g) != 2 || g[0]["util"] != 97.0 {
				t.Errorf("gpu list read back as %v (%v)", g, err)
			}
			if is, _ := events(t, lines); !equalInts(is, seq(0, 4)) {
				t.Errorf("events %v, want 0 to 3 in order", is)
			}
			if s := r.Stats(); s.Records != 6 || s.Parts != 2 || s.Dropped != 0 || s.BufferedBytes != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// TestPartSizeCap: parts are cut at the size cap without waiting for a
// tick, hold whole lines, and keep the order across parts.
func TestPartSizeCap(t *testing.T) {
	t.Parallel()
	store := filetest.New(t)
	line, err := marshalLine("event", t0, ev(0))
	if err != nil {
		t.Fatal(err)
	}
	const perPart = 5
	r, err := New(store, Options{Run: run, Segment: seg, Clock: func() time.Time { return t0 },
		Tick: make(chan time.Time), PartBytes: perPart*len(line) - 1})
	if err != nil {
		t.Fatal(err)
	}
	const n = 23
	for i := range n {
		if err := r.Add(ev(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	keys, lines := readSegment(t, store)
	if want := (n + perPart - 1) / perPart; len(keys) != want {
		t.Errorf("%d parts, want %d", len(keys), want)
	}
	if is, _ := events(t, lines); !equalInts(is, seq(0, n)) {
		t.Errorf("events %v, want 0 to %d in order", is, n-1)
	}
	for _, k := range keys[:len(keys)-1] {
		o, err := store.Stat(t.Context(), k)
		if err != nil {
			t.Fatal(err)
		}
		if o.Size != int64(perPart*len(line)) {
			t.Errorf("part %s has %d bytes, want %d lines of %d", k, o.Size, perPart, len(line))
		}
	}
}

// logCounter counts log lines by message.
type logCounter struct {
	mu   sync.Mutex
	msgs map[string]int
}

func (c *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.msgs == nil {
		c.msgs = map[string]int{}
	}
	c.msgs[r.Message]++
	return nil
}
func (c *logCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCounter) WithGroup(string) slog.Handler      { return c }

func (c *logCounter) count(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for m, k := range c.msgs {
		if strings.HasPrefix(m, prefix) {
			n += k
		}
	}
	return n
}

// TestStoreDown: while the store refuses every part, the Recorder keeps at
// most MaxBuffered bytes, drops and counts the rest, and logs once; when the
// store answers again, everything kept arrives in order, followed by a
// "dropped" line that accounts for every lost record.
func TestStoreDown(t *testing.T) {
	t.Parallel()
	inner := filetest.New(t)
	const outage = 3
	store := faults.Wrap(inner, faults.Rule{Op: faults.OpPut, Err: faults.Unreachable, Times: outage})
	line, err := marshalLine("event", t0, ev(0))
	if err != nil {
		t.Fatal(err)
	}
	const keep = 10
	logs := &logCounter{}
	r, err := New(store, Options{Run: run, Segment: seg, Clock: func() time.Time { return t0 }, Tick: make(chan time.Time),
		MaxBuffered: keep*len(line) + len(line)/2, Log: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	for i := range n {
		if err := r.Add(ev(i)); err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
		if i%40 == 0 { // the 3 flushes of the outage
			if err := r.Flush(t.Context()); !errors.Is(err, storage.ErrUnreachable) {
				t.Fatalf("flush during the outage: %v, want unreachable", err)
			}
		}
	}
	s := r.Stats()
	if s.Dropped != n-keep || s.Records != keep || s.BufferedBytes > keep*len(line)+len(line)/2 || s.Parts != 0 {
		t.Errorf("during the outage: %+v, want %d kept, %d dropped, no part", s, keep, n-keep)
	}
	if err := r.Flush(t.Context()); err != nil {
		t.Fatalf("flush once the store answers: %v", err)
	}
	for i := n; i < n+5; i++ {
		if err := r.Add(ev(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if store.Injected() != outage {
		t.Fatalf("%d faults injected, want %d", store.Injected(), outage)
	}

	_, lines := readSegment(t, inner)
	is, dropped := events(t, lines)
	if want := append(seq(0, keep), seq(n, n+5)...); !equalInts(is, want) {
		t.Errorf("events %v, want %v", is, want)
	}
	if dropped != n-keep {
		t.Errorf("dropped lines count %d, want %d", dropped, n-keep)
	}
	if lines[keep].Type != TypeDropped {
		t.Errorf("line %d is %q, want the dropped line where the gap is", keep, lines[keep].Type)
	}
	if got := logs.count("cannot store telemetry"); got != 1 {
		t.Errorf("%d warnings about the store, want 1", got)
	}
	if got := logs.count("telemetry buffer full"); got != 1 {
		t.Errorf("%d warnings about dropping, want 1", got)
	}
	if got := logs.count("telemetry store answers again"); got != 1 {
		t.Errorf("%d lines about the store's return, want 1", got)
	}
}

// blockingStore takes a Put and holds it until its context ends.
type blockingStore struct {
	entered chan string
}

func (b *blockingStore) Put(ctx context.Context, key string, _ storage.Payload, _ storage.PutOptions) (storage.ObjectInfo, error) {
	select {
	case b.entered <- key:
	default:
	}
	<-ctx.Done()
	return storage.ObjectInfo{}, ctx.Err()
}

// TestAddNeverBlocks: with an upload hanging in the store, Add goes on
// returning at once, within the memory cap; Close gives up when its context
// ends and says what was not stored.
func TestAddNeverBlocks(t *testing.T) {
	t.Parallel()
	store := &blockingStore{entered: make(chan string, 1)}
	tick := make(chan time.Time)
	r, err := New(store, Options{Run: run, Segment: seg, Tick: tick, MaxBuffered: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Add(ev(0)); err != nil {
		t.Fatal(err)
	}
	tick <- t0
	if key := <-store.entered; !strings.HasPrefix(key, Prefix(run, seg)+"000001-") {
		t.Fatalf("upload of %s, want part 1", key)
	}
	// The flusher is stuck in Put; this loop would hang if Add waited.
	for i := 1; i < 10000; i++ {
		if err := r.Add(ev(i)); err != nil {
			t.Fatal(err)
		}
	}
	s := r.Stats()
	if s.BufferedBytes > 4096 || s.Dropped == 0 || s.Records+s.Dropped != 10000 {
		t.Errorf("stats %+v: want at most 4096 bytes held and the rest counted as dropped", s)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err = r.Close(ctx)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "not stored") {
		t.Errorf("close with the store hanging: %v", err)
	}
	if err2 := r.Close(t.Context()); err2 != err {
		t.Errorf("second close: %v, want the first result %v", err2, err)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	store := filetest.New(t)
	for _, o := range []Options{
		{Run: "", Segment: seg},
		{Run: run, Segment: ""},
		{Run: "a/b", Segment: seg},
		{Run: run, Segment: "../x"},
		{Run: run, Segment: ".hidden"},
	} {
		if r, err := New(store, o); err == nil {
			r.Close(t.Context())
			t.Errorf("New(run %q, segment %q): no error", o.Run, o.Segment)
		}
	}
	r, err := New(store, Options{Run: run, Segment: seg, Tick: make(chan time.Time)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"untyped", struct{ A int }{1}, "RecordType"},
		{"empty type", As("", 1), "empty type"},
		{"not JSON", As("x", make(chan int)), "json"},
	}
	for _, tt := range tests {
		if err := r.Add(tt.v); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error about %s", tt.name, err, tt.want)
		}
	}
	if err := r.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if keys, _ := readSegment(t, store); len(keys) != 0 {
		t.Errorf("rejected records made parts %v", keys)
	}
	if err := r.Add(ev(1)); !errors.Is(err, ErrClosed) {
		t.Errorf("add after close: %v", err)
	}
	if err := r.Flush(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("flush after close: %v", err)
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	if got, want := PartKey("r1", "s-1", 7, t0.Add(90*time.Second)), "runs/r1/telemetry/s-1/000007-20260501T120130Z.jsonl"; got != want {
		t.Errorf("PartKey = %s, want %s", got, want)
	}
	if PartKey("r", "s", 9, t0) > PartKey("r", "s", 10, t0) {
		t.Error("part keys do not sort in number order")
	}
	p := Prefix("r", "s")
	for _, tt := range []struct {
		key  string
		want object
		ok   bool
	}{
		{PartKey("r", "s", 12, t0), object{level: "", first: 12, last: 12, time: t0}, true},
		{compactKey(p, "1h", 3, 62, t0), object{level: "1h", first: 3, last: 62, time: t0}, true},
		{p + "1h/000003-000002-20260501T120000Z.jsonl", object{}, false},
		{p + "2h/000003-000004-20260501T120000Z.jsonl", object{}, false},
		{p + "000001.jsonl", object{}, false},
		{p + "000001-2026.jsonl", object{}, false},
		{p + "x/y.txt", object{}, false},
	} {
		got, ok := parseKey(p, storage.ObjectInfo{Key: tt.key})
		got.key, tt.want.key = "", ""
		if ok != tt.ok || ok && got != tt.want {
			t.Errorf("parseKey(%s) = %+v, %v; want %+v, %v", tt.key, got, ok, tt.want, tt.ok)
		}
	}
}
