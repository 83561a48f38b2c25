package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestExponential(t *testing.T) {
	cases := []struct {
		base, limit time.Duration
		n           int
		want        time.Duration
	}{
		{time.Second, 10 * time.Second, -1, 0},
		{time.Second, 10 * time.Second, 0, 0},
		{time.Second, 10 * time.Second, 1, time.Second},
		{time.Second, 10 * time.Second, 2, 2 * time.Second},
		{time.Second, 10 * time.Second, 4, 8 * time.Second},
		{time.Second, 10 * time.Second, 5, 10 * time.Second},
		{time.Second, 10 * time.Second, 1 << 30, 10 * time.Second},
		{time.Second, 0, 3, 4 * time.Second}, // no cap
		{0, time.Second, 3, 0},
	}
	for _, c := range cases {
		if got := Exponential(c.base, c.limit, c.n); got != c.want {
			t.Errorf("Exponential(%v, %v, %d) = %v, want %v", c.base, c.limit, c.n, got, c.want)
		}
	}
	if got := Exponential(time.Second, 0, 1000); got <= 0 {
		t.Errorf("an uncapped backoff overflowed to %v", got)
	}
}

func TestJitter(t *testing.T) {
	for range 100 {
		if d := Jitter(time.Millisecond); d < 0 || d > time.Millisecond {
			t.Fatalf("Jitter(1ms) = %v, outside [0, 1ms]", d)
		}
	}
	if d := Jitter(0); d != 0 {
		t.Fatalf("Jitter(0) = %v", d)
	}
}

func TestSleepEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep with an ended context: %v", err)
	}
	if err := Sleep(t.Context(), 0); err != nil {
		t.Fatalf("Sleep(0): %v", err)
	}
}
