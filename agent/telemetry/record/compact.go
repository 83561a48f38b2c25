package record

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/sync/storage"
)

// keyTime is the layout of the time in object names: the first line's
// time, UTC, to the second.
const keyTime = "20060102T150405Z"

// level is a compaction level: the objects of a level hold the parts of one
// bucket of time, and a bucket is compacted once data Lag past its end has
// been stored.
type level struct {
	name   string // the folder under the segment: "10m", "1h", "1d"
	rank   int    // parts are rank 0
	bucket time.Duration
	lag    time.Duration
}

// levels are the compaction levels, highest first. Every bucket divides
// the next, so windows nest. The day's lag keeps the newest hour out of a
// day object, so that reading the newest hour never fetches a whole day.
func levels() []level {
	return []level{
		{name: "1d", rank: 3, bucket: 24 * time.Hour, lag: time.Hour},
		{name: "1h", rank: 2, bucket: time.Hour},
		{name: "10m", rank: 1, bucket: 10 * time.Minute},
	}
}

func levelRank(name string) int {
	if name == "" {
		return 0
	}
	for _, l := range levels() {
		if l.name == name {
			return l.rank
		}
	}
	return -1
}

// object is one stored object of a segment: a part (level "") or a
// compacted object, holding the lines of parts First to Last in order.
type object struct {
	key         string
	level       string
	first, last int
	time        time.Time // the time of its first line, to the second
	size        int64
	modified    time.Time
}

func partKey(prefix string, n int, t time.Time) string {
	return fmt.Sprintf("%s%06d-%s.jsonl", prefix, n, t.UTC().Format(keyTime))
}

func compactKey(prefix, level string, first, last int, t time.Time) string {
	return fmt.Sprintf("%s%s/%06d-%06d-%s.jsonl", prefix, level, first, last, t.UTC().Format(keyTime))
}

// parseKey reads an object's name; ok is false for a key that is neither a
// part nor a compacted object (it is then ignored).
func parseKey(prefix string, o storage.ObjectInfo) (object, bool) {
	rest, ok := strings.CutPrefix(o.Key, prefix)
	if !ok {
		return object{}, false
	}
	rest, ok = strings.CutSuffix(rest, ".jsonl")
	if !ok {
		return object{}, false
	}
	obj := object{key: o.Key, size: o.Size, modified: o.LastModified}
	if lvl, name, found := strings.Cut(rest, "/"); found {
		if levelRank(lvl) <= 0 {
			return object{}, false
		}
		obj.level, rest = lvl, name
	}
	fields := strings.Split(rest, "-")
	want := 2
	if obj.level != "" {
		want = 3
	}
	if len(fields) != want {
		return object{}, false
	}
	var err error
	if obj.first, err = strconv.Atoi(fields[0]); err != nil || obj.first < 1 {
		return object{}, false
	}
	obj.last = obj.first
	if want == 3 {
		if obj.last, err = strconv.Atoi(fields[1]); err != nil || obj.last < obj.first {
			return object{}, false
		}
	}
	if obj.time, err = time.Parse(keyTime, fields[want-1]); err != nil {
		return object{}, false
	}
	return obj, true
}

// cover picks, from a segment's objects, the ones to read: in part order,
// at each position the object that starts there and reaches furthest.
// The others (parts or smaller objects that a compacted object replaced
// but that a crash left behind) hold only lines the cover holds already:
// they are returned as spare. Compaction only ever merges whole objects of
// the cover, so objects nest and the cover holds every line exactly once;
// were two objects to overlap without nesting (which no writer of this
// package makes), both are read: lines may repeat, none is lost.
func cover(objs []object) (units, spare []object) {
	sort.Slice(objs, func(i, j int) bool {
		if objs[i].first != objs[j].first {
			return objs[i].first < objs[j].first
		}
		if objs[i].last != objs[j].last {
			return objs[i].last > objs[j].last
		}
		return objs[i].key < objs[j].key
	})
	next := 0
	for _, o := range objs {
		if o.last < next {
			spare = append(spare, o)
			continue
		}
		units = append(units, o)
		next = o.last + 1
	}
	return units, spare
}

// listSegments lists every object under prefix (a segment's folder, or the
// run's telemetry folder) and returns them by segment prefix.
func listSegments(ctx context.Context, store ReadStore, telemetry string) (map[string][]object, error) {
	out := map[string][]object{}
	err := store.List(ctx, telemetry, func(o storage.ObjectInfo) error {
		seg, _, ok := strings.Cut(strings.TrimPrefix(o.Key, telemetry), "/")
		if !ok || !strings.HasPrefix(o.Key, telemetry) {
			return nil
		}
		prefix := telemetry + seg + "/"
		if obj, ok := parseKey(prefix, o); ok {
			out[prefix] = append(out[prefix], obj)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list telemetry %s: %w", telemetry, err)
	}
	return out, nil
}

// listSegment lists one segment's objects.
func listSegment(ctx context.Context, store ReadStore, prefix string) ([]object, error) {
	var objs []object
	err := store.List(ctx, prefix, func(o storage.ObjectInfo) error {
		if obj, ok := parseKey(prefix, o); ok {
			objs = append(objs, obj)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list telemetry %s: %w", prefix, err)
	}
	return objs, nil
}

// compactStats counts what one compaction pass did.
type compactStats struct {
	written, deleted int
}

// compactSegment merges the finished windows of one segment, highest level
// first: a window of a level is a maximal run of consecutive objects of the
// cover whose times fall in one bucket of the level; it is finished once an
// object after it starts Lag or more past the bucket's end, or at once when
// final is set (the segment will get no more parts). Each merge writes the
// new object (only if absent), checks its size, and only then deletes the
// objects it replaces; spare objects are deleted first. A crash at any
// point leaves a history that cover reads whole, each line once.
func compactSegment(ctx context.Context, store storage.Store, sl sealer, prefix string, objs []object, final bool) (compactStats, error) {
	var st compactStats
	units, spare := cover(objs)
	for _, o := range spare {
		if err := store.Delete(ctx, o.key); err != nil {
			return st, fmt.Errorf("delete replaced telemetry %s: %w", o.key, err)
		}
		st.deleted++
	}
	for _, lv := range levels() {
		var out []object
		for i := 0; i < len(units); {
			b := units[i].time.Truncate(lv.bucket)
			j := i + 1
			for j < len(units) && units[j].time.Truncate(lv.bucket).Equal(b) {
				j++
			}
			group := units[i:j]
			if (len(group) > 1 || levelRank(group[0].level) < lv.rank) && (final || finished(units[j:], b.Add(lv.bucket+lv.lag))) {
				merged, err := merge(ctx, store, sl, prefix, lv.name, group)
				if err != nil {
					return st, err
				}
				st.written++
				for _, o := range group {
					if err := store.Delete(ctx, o.key); err != nil {
						return st, fmt.Errorf("delete compacted telemetry %s: %w", o.key, err)
					}
					st.deleted++
				}
				out = append(out, merged)
			} else {
				out = append(out, group...)
			}
			i = j
		}
		units = out
	}
	return st, nil
}

// finished reports whether an object of later reaches end.
func finished(later []object, end time.Time) bool {
	for _, o := range later {
		if !o.time.Before(end) {
			return true
		}
	}
	return false
}

// spoolMemory is how much of a compacted object is built in memory; the
// rest goes to a temporary file.
const spoolMemory = 8 << 20

// merge writes the concatenation of group as one object of level lv and
// checks that the store holds all of it. In an encrypted run (sl has a key)
// each object is opened, and the concatenation is built in memory and
// sealed; without the key, a sealed object stops the merge before anything
// is written, so that no telemetry is rewritten in the clear.
func merge(ctx context.Context, store storage.Store, sl sealer, prefix, lv string, group []object) (object, error) {
	first, last := group[0], group[len(group)-1]
	key := compactKey(prefix, lv, first.first, last.last, first.time)
	var sp spool
	sp.memOnly = sl.key != nil // no plaintext of an encrypted run on disk
	defer sp.close()
	for _, o := range group {
		if err := copyObject(ctx, store, sl, o, &sp); err != nil {
			return object{}, err
		}
	}
	if sp.err != nil {
		return object{}, fmt.Errorf("compact telemetry into %s: %w", key, sp.err)
	}
	payload := sp.payload()
	if sl.key != nil {
		sealed := sl.seal(key, sp.buf.Bytes())
		payload, sp.n = storage.BytesPayload(sealed), int64(len(sealed))
	}
	_, err := store.Put(ctx, key, payload, storage.PutOptions{IfAbsent: true})
	if err != nil && !errors.Is(err, storage.ErrPreconditionFailed) {
		return object{}, fmt.Errorf("store compacted telemetry %s: %w", key, err)
	}
	// Written now, or by another compactor before: either way the parts
	// go only once the store shows the whole object.
	info, serr := store.Stat(ctx, key)
	if serr != nil {
		return object{}, fmt.Errorf("check compacted telemetry %s: %w", key, serr)
	}
	if info.Size != sp.n {
		return object{}, fmt.Errorf("check compacted telemetry %s: %d bytes stored, want %d", key, info.Size, sp.n)
	}
	return object{key: key, level: lv, first: first.first, last: last.last, time: first.time, size: sp.n, modified: info.LastModified}, nil
}

// copyObject appends the lines of object o to sp: streamed for a plain
// object, read whole and opened for a sealed one.
func copyObject(ctx context.Context, store storage.Store, sl sealer, o object, sp *spool) error {
	body, _, err := store.Get(ctx, o.key, 0, -1)
	if err != nil {
		return fmt.Errorf("read telemetry %s to compact: %w", o.key, err)
	}
	defer body.Close()
	br := bufio.NewReader(body)
	head, _ := br.Peek(len("baton-sealed-v1 "))
	var n int64
	if sl.key == nil && !checkpoint.IsSealedObject(head) {
		n, err = io.Copy(sp, br)
	} else {
		var raw []byte
		raw, err = io.ReadAll(br)
		n = int64(len(raw))
		if err == nil && n == o.size {
			var plain []byte
			if plain, err = sl.open(o.key, raw); err != nil {
				return err
			}
			_, err = sp.Write(plain)
		}
	}
	if err != nil {
		return fmt.Errorf("read telemetry %s to compact: %w", o.key, err)
	}
	if n != o.size {
		return fmt.Errorf("read telemetry %s to compact: %d bytes, listed with %d", o.key, n, o.size)
	}
	return nil
}

// spool holds a compacted object while it is built: in memory up to
// spoolMemory bytes, in a temporary file beyond (or only in memory, if
// memOnly is set).
type spool struct {
	buf     bytes.Buffer
	f       *os.File
	n       int64
	err     error
	memOnly bool
}

func (s *spool) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.f == nil && !s.memOnly && s.buf.Len()+len(p) > spoolMemory {
		f, err := os.CreateTemp("", "baton-telemetry-*.jsonl")
		if err == nil {
			_, err = f.Write(s.buf.Bytes())
		}
		if err != nil {
			if f != nil {
				f.Close()
				os.Remove(f.Name())
			}
			s.err = fmt.Errorf("spool to a temporary file: %w", err)
			return 0, s.err
		}
		s.f = f
		s.buf = bytes.Buffer{}
	}
	var n int
	var err error
	if s.f != nil {
		n, err = s.f.Write(p)
	} else {
		n, err = s.buf.Write(p)
	}
	s.n += int64(n)
	if err != nil {
		s.err = fmt.Errorf("spool: %w", err)
	}
	return n, s.err
}

func (s *spool) payload() storage.Payload {
	if s.f != nil {
		return storage.NewPayload(s.f, 0, s.n)
	}
	return storage.BytesPayload(s.buf.Bytes())
}

func (s *spool) close() {
	if s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
	}
}

// DefaultIdle is CompactOptions.Idle's default.
const DefaultIdle = time.Hour

// CompactOptions configures Compact.
type CompactOptions struct {
	// Idle: a segment none of whose objects was written for Idle is
	// finished, and its last windows are compacted too (a live Recorder
	// leaves the windows it is still writing alone). 0 means DefaultIdle.
	Idle time.Duration
	// Now is the clock that Idle is measured with; nil means time.Now.
	Now func() time.Time
	// Key is the run's encryption key, nil for a plain run. Without it,
	// the segments of an encrypted run are left as they are (never
	// rewritten in the clear), and Compact fails with an error that wraps
	// a *checkpoint.KeyError (errors.Is checkpoint.ErrEncrypted).
	Key *checkpoint.Key
}

// CompactStats counts what Compact did.
type CompactStats struct {
	// Segments is how many segments the run has.
	Segments int
	// Written is how many compacted objects were written.
	Written int
	// Deleted is how many objects were deleted that compacted ones replace.
	Deleted int
}

// Compact compacts the telemetry of every segment of a run: the windows
// that a Recorder would compact (a Recorder whose host died leaves them),
// and, in segments idle for opts.Idle, the last windows too. It is safe to
// run beside live Recorders and other Compacts, and to interrupt: it never
// deletes a line that is not stored in another object. Errors of one
// segment do not stop the others; they are returned joined.
func Compact(ctx context.Context, store storage.Store, run string, opts CompactOptions) (CompactStats, error) {
	if opts.Idle <= 0 {
		opts.Idle = DefaultIdle
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var st CompactStats
	segs, err := listSegments(ctx, store, telemetryPrefix(run))
	if err != nil {
		return st, err
	}
	prefixes := make([]string, 0, len(segs))
	for p := range segs {
		prefixes = append(prefixes, p)
	}
	sort.Strings(prefixes)
	st.Segments = len(prefixes)
	now := opts.Now()
	sl := sealer{opts.Key, run}
	var errs []error
	var keyErr error
	for _, p := range prefixes {
		objs := segs[p]
		var newest time.Time
		for _, o := range objs {
			if o.modified.After(newest) {
				newest = o.modified
			}
		}
		cs, err := compactSegment(ctx, store, sl, p, objs, now.Sub(newest) >= opts.Idle)
		st.Written += cs.written
		st.Deleted += cs.deleted
		if _, ok := errors.AsType[*checkpoint.KeyError](err); ok {
			keyErr = err // the same for every segment: said once
		} else if err != nil {
			errs = append(errs, err)
		}
	}
	if keyErr != nil {
		errs = append(errs, fmt.Errorf("telemetry left uncompacted: %w", keyErr))
	}
	return st, errors.Join(errs...)
}

func telemetryPrefix(run string) string { return "runs/" + run + "/telemetry/" }
