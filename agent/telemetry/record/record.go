// Package record writes a run's telemetry into the store as JSON lines, so
// that the run's history survives its hosts.
//
// Object stores cannot append, so a Recorder writes immutable parts under
// the run's prefix, one series of parts per host segment, named by their
// number and the time of their first line:
//
//	runs/<run>/telemetry/<segment>/000001-20260501T120000Z.jsonl
//	runs/<run>/telemetry/<segment>/000002-20260501T120100Z.jsonl
//	...
//
// A part is flushed every Options.Interval, as soon as it reaches
// Options.PartBytes, and once more on Close. Finished parts are compacted:
// the parts of ten minutes into one object, those of an hour into one, and
// those of a day into one (see docs/telemetry.md for the layout and its
// invariants), so that a month-long run leaves a few hundred objects.
// ReadRange and Newest read a segment back, and Compact compacts what a
// Recorder left. Each line is one record:
//
//	{"type":"host","time":"2026-05-01T12:00:00Z","data":{...}}
//
// Add never waits for the store: records wait in memory, up to
// Options.MaxBuffered bytes. While the store does not answer, records beyond
// that are dropped and counted, and the next record that fits is preceded by
// a "dropped" record that says how many were lost.
package record

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/units"
	"github.com/batonrun/baton/sync/storage"
)

// Putter is the one method of a storage.Store that a Recorder uses.
type Putter interface {
	Put(ctx context.Context, key string, p storage.Payload, opts storage.PutOptions) (storage.ObjectInfo, error)
}

// Typed is a record that names its type, the "type" of its line: a
// host.Reading is "host".
type Typed interface {
	RecordType() string
}

// As returns v as a record of type typ, for values that have no RecordType
// method of their own (a slice of GPU readings, an event map).
func As(typ string, v any) Typed { return typed{typ, v} }

type typed struct {
	typ string
	v   any
}

func (t typed) RecordType() string { return t.typ }

// Line is one line of a part, as written and as read back.
type Line struct {
	// Type says what Data holds: "host", "gpu", an event's name, or
	// TypeDropped.
	Type string `json:"type"`
	// Time is when the record was added.
	Time time.Time `json:"time"`
	// Data is the record, as it marshals to JSON.
	Data json.RawMessage `json:"data"`
}

// TypeDropped is the type of the line that stands for records the Recorder
// had to drop; its data is a Dropped.
const TypeDropped = "dropped"

// Dropped is the data of a TypeDropped line.
type Dropped struct {
	// Count is how many records were dropped since the line before.
	Count int64 `json:"count"`
}

// ErrClosed is returned by Add and Flush after Close.
var ErrClosed = errors.New("telemetry recorder closed")

// Defaults of Options.
const (
	DefaultInterval    = time.Minute
	DefaultPartBytes   = 1 << 20
	DefaultMaxBuffered = 8 << 20
	DefaultPutTimeout  = time.Minute
	// DefaultCompactTimeout bounds one compaction pass (a day's object
	// is read and written in it).
	DefaultCompactTimeout = 10 * time.Minute
)

// Options configures a Recorder.
type Options struct {
	// Run is the run's id; Segment names this host's series of parts, and
	// must be unique per Recorder (a start time and a host id, as the log
	// segments): a Recorder that reuses a segment overwrites its parts.
	// Both take the characters of a run id ([A-Za-z0-9._-]).
	Run, Segment string
	// Interval is how often the current part is flushed; 0 means
	// DefaultInterval.
	Interval time.Duration
	// PartBytes is the size at which a part is flushed at once; 0 means
	// DefaultPartBytes. A part holds whole lines, so it can be larger by
	// one line.
	PartBytes int
	// MaxBuffered bounds the bytes that wait in memory for the store; 0
	// means DefaultMaxBuffered. Records that would exceed it are dropped.
	MaxBuffered int
	// PutTimeout bounds each upload of a part; 0 means DefaultPutTimeout.
	PutTimeout time.Duration
	// CompactTimeout bounds each compaction pass; 0 means
	// DefaultCompactTimeout. Compaction needs a store that can also list,
	// get, stat and delete (a storage.Store); with a mere Putter, parts stay
	// as they are.
	CompactTimeout time.Duration
	// Clock stamps the records; nil means time.Now.
	Clock func() time.Time
	// Tick, if set, replaces the Interval ticker: every receive flushes
	// (for tests).
	Tick <-chan time.Time
	// Log receives a line when the store stops answering, when records
	// start being dropped, and when the store answers again; nil discards.
	Log *slog.Logger
	// Key, if set, is the run's encryption key: every part and compacted
	// object is sealed with it (see docs/checkpoint-format.md,
	// "Encryption"). nil writes them in the clear.
	Key *checkpoint.Key
}

// Stats counts what a Recorder did.
type Stats struct {
	// Records is how many records were accepted into a part.
	Records int64
	// Dropped is how many records were dropped because the buffer was full.
	Dropped int64
	// Parts is how many parts were stored.
	Parts int64
	// Compacted is how many compacted objects were written.
	Compacted int64
	// BufferedBytes is how many bytes wait for the store now.
	BufferedBytes int
}

// part is a sealed part: its number, the time of its first line and its
// immutable content.
type part struct {
	n     int
	first time.Time
	data  []byte
	lines int
}

// Recorder writes records as JSON lines into parts in the store. Its
// methods are safe for concurrent use.
type Recorder struct {
	store  Putter
	full   storage.Store // the store, if it can compact; else nil
	opts   Options
	prefix string
	log    *slog.Logger
	seal   sealer

	// bg is the context of the background flushes; Close cancels it.
	bg     context.Context
	cancel context.CancelFunc
	kick   chan struct{} // a part is full: upload it now
	stop   chan struct{}
	done   chan struct{} // the flusher has returned

	flushMu sync.Mutex // one upload sequence at a time

	mu           sync.Mutex
	cur          bytes.Buffer
	curLines     int
	curFirst     time.Time // the time of cur's first line
	sealed       []part
	buffered     int // bytes in cur and sealed
	next         int // the number of the next part to seal
	droppedSince int64
	stats        Stats
	closed       bool
	storeDown    bool      // the last upload failed; logged once
	dropping     bool      // records are being dropped; logged once
	lastBucket   time.Time // the compaction bucket of the last stored part
	compactDue   bool      // a stored part may have finished a window
	compactDown  bool      // the last compaction failed; logged once
	closeErr     error
	closeOnce    sync.Once
}

// New returns a Recorder that writes under runs/<run>/telemetry/<segment>/
// in store, and starts its background flushes. Close it to store the last
// part.
func New(store Putter, opts Options) (*Recorder, error) {
	if err := checkpoint.CheckRunID(opts.Run); err != nil {
		return nil, fmt.Errorf("telemetry recorder: %w", err)
	}
	if err := checkpoint.CheckRunID(opts.Segment); err != nil {
		return nil, fmt.Errorf("telemetry recorder: segment name: %w", err)
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.PartBytes <= 0 {
		opts.PartBytes = DefaultPartBytes
	}
	if opts.MaxBuffered <= 0 {
		opts.MaxBuffered = DefaultMaxBuffered
	}
	if opts.PutTimeout <= 0 {
		opts.PutTimeout = DefaultPutTimeout
	}
	if opts.CompactTimeout <= 0 {
		opts.CompactTimeout = DefaultCompactTimeout
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	r := &Recorder{
		store:  store,
		opts:   opts,
		prefix: Prefix(opts.Run, opts.Segment),
		log:    opts.Log,
		seal:   sealer{opts.Key, opts.Run},
		kick:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		next:   1,
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if full, ok := store.(storage.Store); ok {
		r.full = full
	}
	if err := storage.CheckKey(compactKey(r.prefix, "10m", 1, 1, time.Time{})); err != nil {
		return nil, fmt.Errorf("telemetry recorder: %w", err)
	}
	r.bg, r.cancel = context.WithCancel(context.Background())
	go r.loop()
	return r, nil
}

// Prefix is the folder of a segment's parts: runs/<run>/telemetry/<segment>/.
func Prefix(run, segment string) string {
	return "runs/" + run + "/telemetry/" + segment + "/"
}

// PartKey is the key of part n of a segment whose first line has time t.
// Numbers have six digits, so keys sort in order up to part 999999.
func PartKey(run, segment string, n int, t time.Time) string {
	return partKey(Prefix(run, segment), n, t)
}

// Add appends v as one line to the current part. v must name its type (a
// Typed, or wrapped with As) and marshal to JSON. Add never waits for the
// store: when the buffer is full, the record is dropped and counted, and Add
// still returns nil. It fails only for a record it cannot write and after
// Close.
func (r *Recorder) Add(v any) error {
	t, ok := v.(Typed)
	if !ok {
		return fmt.Errorf("telemetry record %T: no RecordType method; wrap it with record.As", v)
	}
	typ := t.RecordType()
	if typ == "" {
		return fmt.Errorf("telemetry record %T: empty type", v)
	}
	if tv, ok := v.(typed); ok {
		v = tv.v
	}
	now := r.opts.Clock().UTC()
	line, err := marshalLine(typ, now, v)
	if err != nil {
		return fmt.Errorf("telemetry record %q: %w", typ, err)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if r.buffered+len(line)+r.droppedNoteLenLocked(now) > r.opts.MaxBuffered {
		r.droppedSince++
		r.stats.Dropped++
		if !r.dropping {
			r.dropping = true
			r.log.Warn("telemetry buffer full while the store does not answer; dropping records until it does",
				"max_buffered_bytes", r.opts.MaxBuffered, "segment", r.prefix)
		}
		return nil
	}
	r.noteDroppedLocked(now)
	r.appendLocked(line, now)
	r.stats.Records++
	if r.cur.Len() >= r.opts.PartBytes {
		r.sealLocked()
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// marshalLine is one line: the envelope around v, ending in a newline.
func marshalLine(typ string, t time.Time, v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	line, err := json.Marshal(Line{Type: typ, Time: t, Data: data})
	if err != nil {
		return nil, err
	}
	return append(line, '\n'), nil
}

// noteDroppedLocked writes the line that stands for the records dropped
// since the last line, if any.
// droppedNoteLenLocked is the length of the line noteDroppedLocked would
// add now (0 if none), so that the buffer's bound holds with it.
func (r *Recorder) droppedNoteLenLocked(now time.Time) int {
	if r.droppedSince == 0 {
		return 0
	}
	line, _ := marshalLine(TypeDropped, now, Dropped{Count: r.droppedSince})
	return len(line)
}

func (r *Recorder) noteDroppedLocked(now time.Time) {
	if r.droppedSince == 0 {
		return
	}
	line, err := marshalLine(TypeDropped, now, Dropped{Count: r.droppedSince})
	if err != nil { // cannot happen: a Dropped always marshals
		panic(err)
	}
	r.droppedSince = 0
	r.appendLocked(line, now)
}

func (r *Recorder) appendLocked(line []byte, t time.Time) {
	if r.cur.Len() == 0 {
		r.curFirst = t
	}
	r.cur.Write(line)
	r.curLines++
	r.buffered += len(line)
}

// sealLocked closes the current part, if it holds anything, and queues it
// for upload.
func (r *Recorder) sealLocked() {
	if r.cur.Len() == 0 {
		return
	}
	r.sealed = append(r.sealed, part{n: r.next, first: r.curFirst, data: bytes.Clone(r.cur.Bytes()), lines: r.curLines})
	r.next++
	r.cur.Reset()
	r.curLines = 0
}

// loop flushes on every tick, and uploads full parts as they are sealed.
func (r *Recorder) loop() {
	defer close(r.done)
	tick := r.opts.Tick
	if tick == nil {
		t := time.NewTicker(r.opts.Interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-r.stop:
			return
		case <-tick:
			r.flush(r.bg, true) // an error is logged and retried on the next tick
		case <-r.kick:
			r.flush(r.bg, false)
		}
	}
}

// Flush seals the current part and uploads every part that waits, in
// order. It stops at the first part the store refuses, which stays queued
// for the next flush. Once every part is stored, it compacts the windows
// that the parts stored since the last compaction finished; a compaction
// that fails is logged and tried again on the next flush, and does not make
// Flush fail.
func (r *Recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return r.flush(ctx, true)
}

// flush uploads the sealed parts in order, after sealing the current one
// if seal is set.
func (r *Recorder) flush(ctx context.Context, seal bool) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	if seal {
		r.mu.Lock()
		r.sealLocked()
		r.mu.Unlock()
	}
	for {
		r.mu.Lock()
		if len(r.sealed) == 0 {
			due := r.compactDue && !r.closed && r.full != nil
			r.mu.Unlock()
			if due {
				r.compact(ctx)
			}
			return nil
		}
		p := r.sealed[0]
		r.mu.Unlock()

		err := r.put(ctx, p)

		r.mu.Lock()
		if err != nil {
			if !r.storeDown && ctx.Err() == nil {
				r.storeDown = true
				r.log.Warn("cannot store telemetry; keeping it in memory and trying again", "key", partKey(r.prefix, p.n, p.first), "err", err)
			}
			r.mu.Unlock()
			return err
		}
		r.sealed[0] = part{}
		r.sealed = r.sealed[1:]
		r.buffered -= len(p.data)
		r.stats.Parts++
		// A part in a new ten-minute bucket may finish windows.
		if b := p.first.Truncate(10 * time.Minute); !b.Equal(r.lastBucket) {
			r.compactDue = r.compactDue || !r.lastBucket.IsZero()
			r.lastBucket = b
		}
		if r.storeDown || r.dropping {
			r.log.Info("telemetry store answers again", "dropped_records", r.stats.Dropped, "segment", r.prefix)
			r.storeDown, r.dropping = false, false
		}
		r.mu.Unlock()
	}
}

func (r *Recorder) put(ctx context.Context, p part) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.PutTimeout)
	defer cancel()
	key := partKey(r.prefix, p.n, p.first)
	if _, err := r.store.Put(ctx, key, storage.BytesPayload(r.seal.seal(key, p.data)), storage.PutOptions{}); err != nil {
		return fmt.Errorf("store telemetry part %s: %w", key, err)
	}
	return nil
}

// compact runs one compaction pass over the segment. The flush lock is
// held: no part is stored meanwhile.
func (r *Recorder) compact(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.CompactTimeout)
	defer cancel()
	objs, err := listSegment(ctx, r.full, r.prefix)
	var st compactStats
	if err == nil {
		st, err = compactSegment(ctx, r.full, r.seal, r.prefix, objs, false)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Compacted += int64(st.written)
	if err != nil {
		if !r.compactDown && ctx.Err() == nil {
			r.compactDown = true
			r.log.Warn("cannot compact telemetry; the parts stay and compaction is tried again", "segment", r.prefix, "err", err)
		}
		return
	}
	if r.compactDown {
		r.log.Info("telemetry compaction works again", "segment", r.prefix)
		r.compactDown = false
	}
	r.compactDue = false
}

// Close stops the background flushes (an upload in progress is abandoned
// and done again), seals the current part and uploads every part that
// waits, within ctx. It reports the records it could not store. Add and
// Flush fail after Close; calling Close again returns the first result.
func (r *Recorder) Close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.noteDroppedLocked(r.opts.Clock().UTC()) // the stored history shows the gap
		r.mu.Unlock()
		r.cancel()
		close(r.stop)
		<-r.done

		err := r.flush(ctx, true)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			lines := 0
			for _, p := range r.sealed {
				lines += p.lines
			}
			r.closeErr = fmt.Errorf("telemetry: %s in %s not stored: %w", units.Plural(lines, "line"), units.Plural(len(r.sealed), "part"), err)
		}
		if r.stats.Dropped > 0 {
			r.log.Warn("telemetry records were dropped while the store did not answer", "dropped_records", r.stats.Dropped, "segment", r.prefix)
		}
	})
	return r.closeErr
}

// Stats returns the counts so far.
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.BufferedBytes = r.buffered
	return s
}
