package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/batonrun/baton/internal/backoff"
)

// Policy says when and how often a failed trainer is restarted.
type Policy struct {
	// MaxRestarts caps the restarts after the first attempt: 0 never
	// restarts, a negative value restarts without limit.
	MaxRestarts int
	// Backoff is the delay before attempt n (n >= 1, the first restart is
	// attempt 1). Nil means [DefaultBackoff].
	Backoff func(attempt int) time.Duration
	// Sleep waits d or until ctx ends, returning ctx's error then. Nil uses a
	// timer; tests inject one that returns at once. The ctx it is given also
	// ends when a stop is requested.
	Sleep func(ctx context.Context, d time.Duration) error
	// OnExit, when set, is told how each attempt ended and whether it will be
	// restarted (for the restarts metric, say: RunWithRestarts logs the exit).
	OnExit func(attempt int, exit Exit, restart bool)
}

// DefaultBackoff is [ExponentialBackoff] from 1 s, doubling up to 1 min.
func DefaultBackoff(attempt int) time.Duration {
	return ExponentialBackoff(time.Second, time.Minute)(attempt)
}

// ExponentialBackoff returns a backoff that waits base before attempt 1 and
// doubles for every further attempt, capped at limit. Attempts below 1 wait 0.
func ExponentialBackoff(base, limit time.Duration) func(attempt int) time.Duration {
	return func(attempt int) time.Duration { return backoff.Exponential(base, limit, attempt) }
}

func (p Policy) backoff(attempt int) time.Duration {
	if p.Backoff == nil {
		return DefaultBackoff(attempt)
	}
	return p.Backoff(attempt)
}

func (p Policy) sleep(ctx context.Context, d time.Duration) error {
	if p.Sleep != nil {
		return p.Sleep(ctx, d)
	}
	return backoff.Sleep(ctx, d)
}

func (p Policy) allows(attempt int) bool {
	return p.MaxRestarts < 0 || attempt <= p.MaxRestarts
}

// RunWithRestarts runs the trainer and restarts it while it fails: attempt 0
// first, then, after a non-zero exit and [Policy.Backoff], attempts 1, 2, …
// up to [Policy.MaxRestarts]. start prepares each attempt (the agent restores
// the newest checkpoint and sets BATON_ATTEMPT from attempt); an error from it
// ends the loop. A trainer whose stop was requested is never restarted, and a
// stop requested during the backoff ends the loop at once. It returns the
// status of the last attempt that ran.
func (s *Supervisor) RunWithRestarts(ctx context.Context, p Policy, start func(ctx context.Context, attempt int) (Spec, error)) (Exit, error) {
	var last Exit
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := s.backoff(ctx, p, attempt); err != nil {
				if s.StopRequested() {
					return last, nil
				}
				return last, fmt.Errorf("supervise: waiting to restart: %w", err)
			}
		}
		spec, err := start(ctx, attempt)
		if err != nil {
			return last, fmt.Errorf("supervise: prepare attempt %d: %w", attempt, err)
		}
		exit, exited, err := s.run(ctx, spec)
		if errors.Is(err, ErrStopRequested) {
			return last, nil
		}
		if err != nil {
			if exited {
				s.logExit(slog.LevelInfo, "trainer exited", exit, "attempt", attempt)
			}
			return exit, err
		}
		last = exit
		restart := !exit.Success() && !exit.Stopped && !s.StopRequested() && p.allows(attempt+1)
		if restart {
			s.logExit(slog.LevelWarn, "trainer failed; restarting", exit, "attempt", attempt, "next", attempt+1)
		} else {
			s.logExit(slog.LevelInfo, "trainer exited", exit, "attempt", attempt)
		}
		if p.OnExit != nil {
			p.OnExit(attempt, exit, restart)
		}
		if !restart {
			return exit, nil
		}
	}
}

// backoff sleeps before attempt, ending early when ctx ends or a stop is
// requested.
func (s *Supervisor) backoff(ctx context.Context, p Policy, attempt int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := p.sleep(ctx, p.backoff(attempt)); err != nil {
		return err
	}
	if s.StopRequested() {
		return ErrStopRequested
	}
	return ctx.Err()
}
