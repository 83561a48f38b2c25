// Package backoff computes the waits between tries of something that failed
// and waits them out: exponential growth with a cap, optional full jitter,
// and a sleep that ends early with its context. Storage retries
// (sync/storage) and trainer restarts (agent/supervise) share it.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Exponential returns the wait before try n (n >= 1) of something that
// waits base before its first retry and twice as long before each next
// one: base × 2^(n-1), capped at limit (no cap when limit <= 0, save the
// largest time.Duration). Tries below 1 wait 0, as does a base of 0 or less.
func Exponential(base, limit time.Duration, n int) time.Duration {
	if n < 1 || base <= 0 {
		return 0
	}
	d := base
	for i := 1; i < n; i++ {
		if limit > 0 && d >= limit || d > (1<<62) {
			break
		}
		d *= 2
	}
	if limit > 0 {
		d = min(d, limit)
	}
	return d
}

// Jitter returns a random wait in [0, d] ("full jitter"), so that many
// clients that failed together do not all try again together.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}

// Sleep waits d or until ctx ends, and then returns ctx's error.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
