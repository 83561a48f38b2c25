package storage

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
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
func (r Retry) Do(ctx context.Context, op func(ctx context.Context) error) error {
	attempts := max(r.Attempts, 1)
	for try := 1; ; try++ {
		err := op(ctx)
		if err == nil || !IsRetryable(err) || ctx.Err() != nil {
			return err
		}
		limit := attempts
		if errors.Is(err, ErrUnreachable) && r.UnreachableAttempts > 0 {
			limit = min(limit, r.UnreachableAttempts)
		}
		if try >= limit {
			return fmt.Errorf("gave up after %d tries: %w", try, err)
		}
		if err := r.sleep(ctx, r.backoff(try)); err != nil {
			return err
		}
	}
}

// backoff returns a random wait in [0, min(Max, Base*2^(try-1))].
func (r Retry) backoff(try int) time.Duration {
	ceiling := r.Base << min(try-1, 30)
	if r.Max > 0 && (ceiling > r.Max || ceiling <= 0) {
		ceiling = r.Max
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling + 1)
}

func (r Retry) sleep(ctx context.Context, d time.Duration) error {
	if r.Sleep != nil {
		return r.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
