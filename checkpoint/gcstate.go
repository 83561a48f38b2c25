package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/batonrun/baton/sync/storage"
)

// gcKey is the store-wide record of garbage collection, relative to the
// store's prefix.
const gcKey = "gc.json"

// gcLease is how long a running GC's claim in gc.json lasts unless renewed;
// it renews every quarter of it.
const gcLease = 2 * time.Minute

// ErrGCRunning: another GC of the store is running.
var ErrGCRunning = errors.New("another gc of this store is running")

// GCRecord is the content of gc.json. Generation goes up by one each time a
// GC starts; Running is true from then until it ends. A running GC renews
// Until; one that stopped renewing (killed) counts as ended after it.
type GCRecord struct {
	Generation int64     `json:"generation"`
	Running    bool      `json:"running"`
	Holder     string    `json:"holder,omitempty"`
	Until      time.Time `json:"until"`
}

// active reports whether r is a GC that may still delete at now.
func (r GCRecord) active(now time.Time) bool { return r.Running && now.Before(r.Until) }

// readGCRecord returns gc.json and its ETag; a store that never had a GC has
// the zero record and an empty ETag.
func readGCRecord(ctx context.Context, store storage.Store) (GCRecord, string, error) {
	r := &Repo{store: store}
	var rec GCRecord
	etag, err := r.getJSON(ctx, gcKey, 64<<10, &rec)
	if errors.Is(err, storage.ErrNotFound) {
		return GCRecord{}, "", nil
	}
	if err != nil {
		return GCRecord{}, "", fmt.Errorf("reading %s: %w", gcKey, err)
	}
	return rec, etag, nil
}

// gcState is gc.json as held by the running GC.
type gcState struct {
	repo *Repo // store and clock, for getJSON and putJSON
	key  string
	rec  GCRecord
	etag string
	now  func() time.Time
	// until is rec.Until in Unix nanoseconds, for check, which runs
	// beside keepAlive.
	until atomic.Int64
}

// beginGC claims gc.json for a new generation, or fails with ErrGCRunning.
func beginGC(ctx context.Context, store storage.Store, holder string, now func() time.Time) (*gcState, error) {
	r := &Repo{store: store, opts: Options{Now: now}}
	for try := 0; try < 10; try++ {
		cur, etag, err := readGCRecord(ctx, store)
		if err != nil {
			return nil, err
		}
		if cur.active(now()) {
			return nil, fmt.Errorf("%w: %s, until %s", ErrGCRunning, cur.Holder, cur.Until.Format(time.RFC3339))
		}
		next := GCRecord{Generation: cur.Generation + 1, Running: true, Holder: holder, Until: now().Add(gcLease).UTC()}
		opts := storage.PutOptions{IfMatch: etag}
		if etag == "" {
			opts = storage.PutOptions{IfAbsent: true}
		}
		info, err := r.putJSON(ctx, gcKey, next, opts)
		if errors.Is(err, storage.ErrPreconditionFailed) || errors.Is(err, storage.ErrNotFound) {
			if info, err = ownWrite(ctx, store, next); err != nil {
				continue // another GC claimed it first: look again
			}
		}
		if err != nil {
			return nil, fmt.Errorf("writing %s: %w", gcKey, err)
		}
		s := &gcState{repo: r, key: gcKey, rec: next, etag: info.ETag, now: now}
		s.until.Store(next.Until.UnixNano())
		return s, nil
	}
	return nil, fmt.Errorf("taking %s: too much contention", gcKey)
}

// check returns an error once this GC's claim has run out: past it, a
// commit no longer waits for this GC, so it must delete nothing more.
func (s *gcState) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	// A margin of a quarter of the lease for the time a delete takes.
	if !s.now().Add(gcLease / 4).Before(time.Unix(0, s.until.Load())) {
		return fmt.Errorf("gc: its claim in %s ran out (renewals failed); stopping", gcKey)
	}
	return nil
}

// keepAlive renews the claim every quarter of gcLease until ctx ends; a
// failed renewal stops the GC through stop.
func (s *gcState) keepAlive(ctx context.Context, done chan<- struct{}, stop context.CancelCauseFunc) {
	defer close(done)
	every(ctx, gcLease/4, func() bool {
		if err := s.write(ctx, s.now().Add(gcLease).UTC(), true); err != nil {
			stop(fmt.Errorf("gc: renewing its claim in %s: %w", gcKey, err))
			return false
		}
		return true
	})
}

// every calls renew every interval until ctx ends or renew returns false:
// the loop of the renewals of gc.json and of a lease (Lease.KeepAlive).
func every(ctx context.Context, interval time.Duration, renew func() bool) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if !renew() {
				return
			}
		}
	}
}

// end records that this GC ended.
func (s *gcState) end(ctx context.Context) error {
	return s.write(ctx, s.now().UTC(), false)
}

func (s *gcState) write(ctx context.Context, until time.Time, running bool) error {
	next := s.rec
	next.Until, next.Running = until, running
	info, err := s.repo.putJSON(ctx, s.key, next, storage.PutOptions{IfMatch: s.etag})
	if errors.Is(err, storage.ErrPreconditionFailed) || errors.Is(err, storage.ErrNotFound) {
		info, err = ownWrite(ctx, s.repo.store, next)
	}
	if err != nil {
		return err
	}
	s.rec, s.etag = next, info.ETag
	s.until.Store(until.UnixNano())
	return nil
}

// ownWrite tells, after a conditional write of rec to gc.json lost its
// condition, whether the write that won was this one, landed with its
// response lost (the store retried it): it returns gc.json's ETag if
// gc.json holds rec, and an error otherwise.
func ownWrite(ctx context.Context, store storage.Store, rec GCRecord) (storage.ObjectInfo, error) {
	cur, etag, err := readGCRecord(ctx, store)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	if cur.Generation != rec.Generation || cur.Running != rec.Running || cur.Holder != rec.Holder || !cur.Until.Equal(rec.Until) {
		return storage.ObjectInfo{}, fmt.Errorf("writing %s: %w: another GC wrote it (generation %d, %s)", gcKey, storage.ErrPreconditionFailed, cur.Generation, cur.Holder)
	}
	return storage.ObjectInfo{Key: gcKey, ETag: etag}, nil
}
