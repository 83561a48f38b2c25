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
	mu   sync.Mutex
	rec  LeaseRecord
	etag string
	lost bool
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
			Holder:    r.opts.Holder.ID,
			ExpiresAt: now.Add(r.opts.LeaseDuration),
			Platform:  r.opts.Holder.Platform,
			Host:      r.opts.Holder.Host,
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
	r := l.repo
	for {
		latest, etag, err := r.readPointer(ctx)
		if err != nil {
			return err
		}
		if latest.Epoch > l.rec.Epoch {
			return l.markLost(latest.Epoch)
		}
		if etag != "" && latest.Epoch == l.rec.Epoch {
			return nil
		}
		opts := storage.PutOptions{IfMatch: etag}
		if etag == "" {
			opts = storage.PutOptions{IfAbsent: true}
		}
		latest.Epoch = l.rec.Epoch
		latest.Holder = l.rec.Holder
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
	l.mu.Unlock()
	return fmt.Errorf("%w (run %s now at epoch %d, this host held epoch %d)", ErrLeaseLost, l.repo.opts.Run, epoch, l.rec.Epoch)
}

// Lost reports whether the lease is known to be lost.
func (l *Lease) Lost() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// Renew extends the lease by the repository's lease duration. It fails with
// ErrLeaseLost if another holder took it over.
func (l *Lease) Renew(ctx context.Context) error {
	return l.rewrite(ctx, l.repo.opts.Now().Add(l.repo.opts.LeaseDuration))
}

// Release gives the lease up by marking it expired, so the next host takes
// over at once (with epoch+1).
func (l *Lease) Release(ctx context.Context) error {
	return l.rewrite(ctx, time.Time{})
}

func (l *Lease) rewrite(ctx context.Context, expires time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost {
		return fmt.Errorf("%w (run %s)", ErrLeaseLost, l.repo.opts.Run)
	}
	r := l.repo
	next := l.rec
	next.ExpiresAt = expires
	info, err := r.putJSON(ctx, leaseKey(r.opts.Run), next, storage.PutOptions{IfMatch: l.etag})
	if errors.Is(err, storage.ErrPreconditionFailed) || errors.Is(err, storage.ErrNotFound) {
		// Either someone took the lease, or our own write landed and only
		// its response was lost: the lease file tells which.
		var cur LeaseRecord
		etag, rerr := r.getJSON(ctx, leaseKey(r.opts.Run), 64<<10, &cur)
		if rerr == nil && cur.Holder == next.Holder && cur.Epoch == next.Epoch && cur.ExpiresAt.Equal(next.ExpiresAt) {
			l.rec, l.etag = next, etag
			return nil
		}
		l.lost = true
		return fmt.Errorf("%w (run %s: lease now %s at epoch %d)", ErrLeaseLost, r.opts.Run, cur.Holder, cur.Epoch)
	}
	if err != nil {
		return fmt.Errorf("renewing the lease of run %s: %w", r.opts.Run, err)
	}
	l.rec, l.etag = next, info.ETag
	return nil
}
