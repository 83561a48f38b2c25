package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/batonrun/baton/sync/storage"
)

// Lease is the right to commit to a run, held by one Holder at one epoch.
// Each takeover raises the epoch, and the new holder at once rewrites
// latest.json with it, so a host that lost the lease can no longer move
// latest.json: its conditional write fails, it reads the higher epoch, and
// it learns it lost the run (ErrLeaseLost).
type Lease struct {
	repo *Repo
	// writing serializes what writes lease.json (Renew, Release) and the
	// fencing of latest.json: requests, with their retries. mu guards the
	// fields below and is held only to read or set them, so that Epoch,
	// Lost and Record never wait for a request.
	writing  sync.Mutex
	mu       sync.Mutex
	rec      LeaseRecord
	etag     string
	lost     bool
	released bool
}

// Epoch is the lease's fencing token.
func (l *Lease) Epoch() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec.Epoch
}

// Record returns what lease.json says of this lease.
func (l *Lease) Record() LeaseRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec
}

// LeaseHeldError is Acquire's error when another holder's lease has not
// expired. It wraps ErrLeaseHeld.
type LeaseHeldError struct {
	// Record is the lease as Acquire found it.
	Record LeaseRecord
}

func (e *LeaseHeldError) Error() string {
	r := e.Record
	return fmt.Sprintf("%v: %s on %s (%s), epoch %d, until %s", ErrLeaseHeld,
		r.Holder, r.Host, r.Platform, r.Epoch, r.ExpiresAt.Format(time.RFC3339))
}

// Unwrap makes errors.Is(err, ErrLeaseHeld) true.
func (e *LeaseHeldError) Unwrap() error { return ErrLeaseHeld }

// Acquire takes the run's lease: creates it if there is none, takes it over
// with epoch+1 if it expired, is this holder's own, or is the one
// Options.Supersedes names, and fails with a *LeaseHeldError otherwise.
func (r *Repo) Acquire(ctx context.Context) (*Lease, error) {
	if r.opts.Holder.ID == "" {
		return nil, errors.New("checkpoint: a lease needs a holder id")
	}
	// A run whose numbers ran out can take no commit: refuse before
	// writing anything.
	latest, _, err := r.readPointer(ctx)
	if err != nil {
		return nil, err
	}
	if latest.Seq == math.MaxInt64 || latest.Epoch == math.MaxInt64 {
		return nil, fmt.Errorf("checkpoint: run %s: latest.json is at checkpoint %d, epoch %d, the last numbers there are; refusing to take the lease",
			r.opts.Run, latest.Seq, latest.Epoch)
	}
	key := leaseKey(r.opts.Run)
	for try := 0; try < 10; try++ {
		var cur LeaseRecord
		etag, err := r.getJSON(ctx, key, 64<<10, &cur)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("reading the lease of run %s: %w", r.opts.Run, err)
		}
		now := r.opts.Now()
		next := LeaseRecord{
			Holder:     r.opts.Holder.ID,
			ExpiresAt:  now.Add(r.opts.LeaseDuration),
			Platform:   r.opts.Holder.Platform,
			Host:       r.opts.Holder.Host,
			Encryption: r.key.marker(),
		}
		var opts storage.PutOptions
		switch {
		case err != nil: // no lease yet
			// A lease file can be lost (a bucket restored, a hand deleting
			// it); the epoch must still exceed any latest.json carries.
			latest, _, lerr := r.readPointer(ctx)
			if lerr != nil {
				return nil, lerr
			}
			next.Epoch = latest.Epoch + 1
			opts.IfAbsent = true
		case cur.Epoch == math.MaxInt64:
			return nil, fmt.Errorf("checkpoint: run %s: lease.json is at epoch %d, the last number there is; refusing to take the lease", r.opts.Run, cur.Epoch)
		case cur.Holder == r.opts.Holder.ID || cur.Holder == r.opts.Supersedes && cur.Holder != "" || !now.Before(cur.ExpiresAt):
			next.Epoch = cur.Epoch + 1
			opts.IfMatch = etag
		default:
			return nil, &LeaseHeldError{Record: cur}
		}
		info, err := r.putJSON(ctx, key, next, opts)
		if errors.Is(err, storage.ErrPreconditionFailed) || errors.Is(err, storage.ErrNotFound) {
			continue // someone else moved first: look again
		}
		if err != nil {
			return nil, fmt.Errorf("writing the lease of run %s: %w", r.opts.Run, err)
		}
		l := &Lease{repo: r, rec: next, etag: info.ETag}
		if err := l.fence(ctx); err != nil {
			return nil, err
		}
		r.log.Info("lease acquired", "run", r.opts.Run, "epoch", next.Epoch, "expires_at", next.ExpiresAt)
		return l, nil
	}
	return nil, fmt.Errorf("taking the lease of run %s: too much contention", r.opts.Run)
}

// fence rewrites latest.json with this lease's epoch, so that a former
// holder's next attempt to move it fails. A run with no checkpoint yet gets
// a pointer to checkpoint 0 at this epoch: without it, a former holder could
// still publish the run's first checkpoint with a create-only write.
func (l *Lease) fence(ctx context.Context) error {
	l.writing.Lock()
	defer l.writing.Unlock()
	r := l.repo
	rec := l.Record()
	for {
		latest, etag, err := r.readPointer(ctx)
		if err != nil {
			return err
		}
		if latest.Epoch > rec.Epoch {
			return l.markLost(latest.Epoch)
		}
		if etag != "" && latest.Epoch == rec.Epoch {
			return nil
		}
		opts := storage.PutOptions{IfMatch: etag}
		if etag == "" {
			opts = storage.PutOptions{IfAbsent: true}
		}
		latest.Epoch = rec.Epoch
		latest.Holder = rec.Holder
		if latest.Seq == 0 {
			latest.Encryption = r.key.marker() // no checkpoint yet: the first commit decides
		}
		latest.UpdatedAt = r.opts.Now()
		_, err = r.putJSON(ctx, latestKey(r.opts.Run), latest, opts)
		if errors.Is(err, storage.ErrPreconditionFailed) || errors.Is(err, storage.ErrNotFound) {
			continue // the former holder wrote meanwhile: fence that
		}
		return err
	}
}

func (l *Lease) markLost(epoch int64) error {
	l.mu.Lock()
	l.lost = true
	held := l.rec.Epoch
	l.mu.Unlock()
	return fmt.Errorf("%w (run %s now at epoch %d, this host held epoch %d)", ErrLeaseLost, l.repo.opts.Run, epoch, held)
}

// Lost reports whether the lease is known to be lost.
func (l *Lease) Lost() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// Renew extends the lease by the repository's lease duration. It fails with
// ErrLeaseLost if another holder took it over. A released lease is not
// renewed (errReleased).
func (l *Lease) Renew(ctx context.Context) error {
	return l.rewrite(ctx, l.repo.opts.Now().Add(l.repo.opts.LeaseDuration), false)
}

// Release gives the lease up by marking it expired, so the next host takes
// over at once (with epoch+1). A renewal (KeepAlive's) that comes after it
// writes nothing.
func (l *Lease) Release(ctx context.Context) error {
	return l.rewrite(ctx, time.Time{}, true)
}

// errReleased is Renew's error after Release.
var errReleased = errors.New("checkpoint: the lease was released")

// KeepAlive renews the lease every interval (0: a third of
// Options.LeaseDuration) until ctx ends or stop is called, in a goroutine
// of its own. It is the one renewal loop of the lease's holders (baton run,
// baton checkpoint commit).
//
// The context it returns is ctx's child, and it also ends, with a cause
// that wraps ErrLeaseLost (see context.Cause), as soon as a renewal finds
// the lease lost: the work done under it, a commit, stops at once. A
// renewal that fails otherwise (the store out of reach for a while) is
// logged and tried again at the next tick; the lease holds until it
// expires. Renewals end quietly once the lease is released.
//
// stop ends the renewals, waiting for one in flight (whose request it
// cancels), and ends the returned context. It returns the error that
// wraps ErrLeaseLost if a renewal found the lease lost, nil otherwise; it
// may be called more than once.
func (l *Lease) KeepAlive(ctx context.Context, interval time.Duration) (context.Context, func() error) {
	if interval <= 0 {
		interval = l.repo.opts.LeaseDuration / 3
	}
	lctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		every(lctx, interval, func() bool {
			err := l.Renew(lctx)
			switch {
			case errors.Is(err, ErrLeaseLost):
				cancel(err)
				return false
			case errors.Is(err, errReleased):
				return false
			case err != nil && lctx.Err() == nil:
				l.repo.log.Warn("lease renewal failed; trying again", "run", l.repo.opts.Run, "err", err)
			}
			return true
		})
	}()
	stop := func() error {
		cancel(nil)
		<-done
		if cause := context.Cause(lctx); errors.Is(cause, ErrLeaseLost) {
			return cause
		}
		return nil
	}
	return lctx, stop
}

// rewrite writes lease.json with the expiry given, conditional on the ETag
// of this lease's last write.
func (l *Lease) rewrite(ctx context.Context, expires time.Time, release bool) error {
	l.writing.Lock()
	defer l.writing.Unlock()
	l.mu.Lock()
	next, etag, lost, released := l.rec, l.etag, l.lost, l.released
	l.mu.Unlock()
	r := l.repo
	switch {
	case lost:
		return fmt.Errorf("%w (run %s)", ErrLeaseLost, r.opts.Run)
	case released && release:
		return nil
	case released:
		return fmt.Errorf("%w (run %s)", errReleased, r.opts.Run)
	}
	next.ExpiresAt = expires
	for try := 0; ; try++ {
		info, err := r.putJSON(ctx, leaseKey(r.opts.Run), next, storage.PutOptions{IfMatch: etag})
		if errors.Is(err, storage.ErrPreconditionFailed) || errors.Is(err, storage.ErrNotFound) {
			// Either someone took the lease, or a write of ours landed
			// and only its response was lost (this one, retried, or an
			// earlier one whose request was cancelled): the lease file
			// tells which. Only this lease writes its holder at its
			// epoch; any takeover raises the epoch.
			var cur LeaseRecord
			cetag, rerr := r.getJSON(ctx, leaseKey(r.opts.Run), 64<<10, &cur)
			ours := rerr == nil && cur.Holder == next.Holder && cur.Epoch == next.Epoch
			if ours && cur.ExpiresAt.Equal(next.ExpiresAt) {
				l.set(next, cetag, release)
				return nil
			}
			if ours && try < 2 {
				etag = cetag // an earlier write of ours: write over it
				continue
			}
			if rerr != nil && !errors.Is(rerr, storage.ErrNotFound) && !errors.Is(rerr, ErrBadManifest) {
				return fmt.Errorf("renewing the lease of run %s: reading it back: %w", r.opts.Run, rerr)
			}
			l.mu.Lock()
			l.lost = true
			l.mu.Unlock()
			return fmt.Errorf("%w (run %s: lease now %s at epoch %d)", ErrLeaseLost, r.opts.Run, cur.Holder, cur.Epoch)
		}
		if err != nil {
			return fmt.Errorf("renewing the lease of run %s: %w", r.opts.Run, err)
		}
		l.set(next, info.ETag, release)
		return nil
	}
}

// set records a write of lease.json.
func (l *Lease) set(rec LeaseRecord, etag string, released bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rec, l.etag = rec, etag
	l.released = l.released || released
}
