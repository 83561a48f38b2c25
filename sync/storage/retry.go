package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/batonrun/baton/internal/backoff"
)

// Retry is the one retry policy of baton's storage code: exponential backoff
// with full jitter, on retryable errors only (see IsRetryable). The SDKs' own
// retries are switched off in every driver, so this is the only layer that
// decides.
type Retry struct {
	// Attempts is the most tries of one operation, the first included.
	Attempts int
	// UnreachableAttempts caps the tries while the endpoint cannot be reached
	// at all, so a wrong endpoint fails in seconds rather than minutes.
	UnreachableAttempts int
	// Base is the backoff before the second try; it doubles up to Max.
	Base time.Duration
	// Max caps one backoff.
	Max time.Duration
	// Sleep waits for d or until ctx is done; nil means a real timer. Tests
	// inject their own.
	Sleep func(ctx context.Context, d time.Duration) error
}

// DefaultRetry is the policy used unless a caller sets another: up to 10
// tries over about a minute for transient errors, 4 tries over a few seconds
// for an unreachable endpoint.
func DefaultRetry() Retry {
	return Retry{Attempts: 10, UnreachableAttempts: 4, Base: 250 * time.Millisecond, Max: 10 * time.Second}
}

// Do runs op until it succeeds, fails with an error that is not retryable, the
// policy's attempts run out, or ctx is done. It returns op's last error,
// annotated with the number of tries when there was more than one.
//
// Most code does not call Do: a Store opened for it is wrapped in WithRetry,
// which retries every request. Do is for an operation of several requests
// that must start again as a whole.
func (r Retry) Do(ctx context.Context, op func(ctx context.Context) error) error {
	for try := 1; ; try++ {
		err := op(ctx)
		if err == nil || !IsRetryable(err) || ctx.Err() != nil {
			return err
		}
		if err := r.pause(ctx, try, err); err != nil {
			return err
		}
	}
}

// pause is what Do does between try and try+1, which failed with the
// retryable err: it returns the error to give up with once the policy's
// tries are spent (fewer for an unreachable endpoint), or ctx's error if it
// ends first, or nil after the backoff.
func (r Retry) pause(ctx context.Context, try int, err error) error {
	limit := max(r.Attempts, 1)
	if errors.Is(err, ErrUnreachable) && r.UnreachableAttempts > 0 {
		limit = min(limit, r.UnreachableAttempts)
	}
	if try >= limit {
		return fmt.Errorf("gave up after %d tries: %w", try, err)
	}
	d := backoff.Jitter(backoff.Exponential(r.Base, r.Max, try))
	if r.Sleep != nil {
		return r.Sleep(ctx, d)
	}
	return backoff.Sleep(ctx, d)
}
