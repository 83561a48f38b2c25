package supervise

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestExponentialBackoff(t *testing.T) {
	b := ExponentialBackoff(time.Second, 10*time.Second)
	cases := []struct {
		attempt int
		want    time.Duration
	}{
		{-1, 0},
		{0, 0},
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{4, 8 * time.Second},
		{5, 10 * time.Second},
		{1000, 10 * time.Second},
	}
	for _, tc := range cases {
		if got := b(tc.attempt); got != tc.want {
			t.Errorf("backoff(%d) = %v, want %v", tc.attempt, got, tc.want)
		}
	}
	if got := DefaultBackoff(100); got != time.Minute {
		t.Errorf("DefaultBackoff(100) = %v, want the 1 min cap", got)
	}
}

func TestExitString(t *testing.T) {
	cases := []struct {
		exit Exit
		want string
	}{
		{Exit{Code: 0}, "exit status 0"},
		{Exit{Code: 3}, "exit status 3"},
		{Exit{Code: -1, Signal: syscall.SIGKILL}, "killed by signal killed"},
		{Exit{Code: -1, Signal: syscall.SIGSEGV, CoreDump: true}, "killed by signal segmentation fault (core dumped)"},
	}
	for _, tc := range cases {
		if got := tc.exit.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.exit, got, tc.want)
		}
	}
}

// failingTrainer exits 1 until its attempt number reaches succeedAt.
func failingTrainer(attempt, succeedAt int) Spec {
	return Spec{
		Path: "/bin/sh",
		Args: []string{"-c", `[ "$BATON_ATTEMPT" -ge "$SUCCEED_AT" ] && exit 0; exit 1`},
		Env:  []string{"BATON_ATTEMPT=" + strconv.Itoa(attempt), "SUCCEED_AT=" + strconv.Itoa(succeedAt)},
	}
}

func TestRunWithRestarts(t *testing.T) {
	cases := []struct {
		name         string
		maxRestarts  int
		succeedAt    int
		wantAttempts []int
		wantCode     int
		wantSleeps   []time.Duration
	}{
		{"fails twice then succeeds", 5, 2, []int{0, 1, 2}, 0, []time.Duration{time.Second, 2 * time.Second}},
		{"cap of one restart", 1, 2, []int{0, 1}, 1, []time.Duration{time.Second}},
		{"no restarts", 0, 2, []int{0}, 1, nil},
		{"unlimited", -1, 4, []int{0, 1, 2, 3, 4}, 0, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}},
		{"first attempt succeeds", 3, 0, []int{0}, 0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestReaper(t, ReaperOptions{})
			s := newTestSupervisor(t, r)
			var attempts, exited []int
			var restarts []bool
			var sleeps []time.Duration
			p := Policy{
				MaxRestarts: tc.maxRestarts,
				Backoff:     ExponentialBackoff(time.Second, 4*time.Second),
				Sleep: func(ctx context.Context, d time.Duration) error {
					sleeps = append(sleeps, d)
					return nil
				},
				OnExit: func(attempt int, e Exit, restart bool) {
					exited = append(exited, attempt)
					restarts = append(restarts, restart)
				},
			}
			exit, err := s.RunWithRestarts(testContext(t), p, func(_ context.Context, attempt int) (Spec, error) {
				attempts = append(attempts, attempt)
				return failingTrainer(attempt, tc.succeedAt), nil
			})
			if err != nil {
				t.Fatalf("RunWithRestarts: %v", err)
			}
			if exit.Code != tc.wantCode {
				t.Errorf("exit = %v, want code %d", exit, tc.wantCode)
			}
			if !slices.Equal(attempts, tc.wantAttempts) || !slices.Equal(exited, tc.wantAttempts) {
				t.Errorf("attempts started %v, ended %v; want %v", attempts, exited, tc.wantAttempts)
			}
			// Every attempt but the last is restarted.
			wantRestarts := make([]bool, len(tc.wantAttempts))
			for i := range len(wantRestarts) - 1 {
				wantRestarts[i] = true
			}
			if !slices.Equal(restarts, wantRestarts) {
				t.Errorf("OnExit restart flags %v, want %v", restarts, wantRestarts)
			}
			if !slices.Equal(sleeps, tc.wantSleeps) {
				t.Errorf("backoffs %v, want %v", sleeps, tc.wantSleeps)
			}
		})
	}
}

// TestRunWithRestartsStopNotRestarted stops a running trainer: it dies of the
// forwarded SIGTERM and is not restarted.
func TestRunWithRestartsStopNotRestarted(t *testing.T) {
	r := newTestReaper(t, ReaperOptions{})
	s := newTestSupervisor(t, r)
	out := newLineWatch("ready")
	go func() {
		select {
		case <-out.seen("ready"):
			s.Stop(syscall.SIGTERM)
		case <-t.Context().Done():
		}
	}()
	var attempts []int
	p := Policy{MaxRestarts: 5, Sleep: func(context.Context, time.Duration) error {
		t.Error("backoff after a requested stop")
		return nil
	}}
	exit, err := s.RunWithRestarts(testContext(t), p, func(_ context.Context, attempt int) (Spec, error) {
		attempts = append(attempts, attempt)
		return Spec{Path: "/bin/sh", Args: []string{"-c", "echo ready; exec sleep 1000"}, Stdout: out, Grace: time.Minute}, nil
	})
	if err != nil {
		t.Fatalf("RunWithRestarts: %v", err)
	}
	if exit.Signal != syscall.SIGTERM || !exit.Stopped {
		t.Errorf("exit = %+v, want killed by the forwarded SIGTERM", exit)
	}
	if !slices.Equal(attempts, []int{0}) {
		t.Errorf("attempts %v, want [0]", attempts)
	}
}

// TestRunWithRestartsStopDuringBackoff requests a stop while the loop waits
// to restart: the wait ends at once and nothing more is started.
func TestRunWithRestartsStopDuringBackoff(t *testing.T) {
	r := newTestReaper(t, ReaperOptions{})
	s := newTestSupervisor(t, r)
	var attempts []int
	var sleepErr error
	p := Policy{MaxRestarts: 5, Sleep: func(ctx context.Context, d time.Duration) error {
		s.Stop(syscall.SIGTERM)
		<-ctx.Done() // ends because of the stop; the test's context lives on
		sleepErr = ctx.Err()
		return sleepErr
	}}
	exit, err := s.RunWithRestarts(testContext(t), p, func(_ context.Context, attempt int) (Spec, error) {
		attempts = append(attempts, attempt)
		return failingTrainer(attempt, 99), nil
	})
	if err != nil {
		t.Fatalf("RunWithRestarts: %v", err)
	}
	if exit.Code != 1 || !slices.Equal(attempts, []int{0}) {
		t.Errorf("exit %v after attempts %v; want the first failure only", exit, attempts)
	}
	if !errors.Is(sleepErr, context.Canceled) {
		t.Errorf("backoff ended with %v, want context.Canceled", sleepErr)
	}
}

// TestRunWithRestartsPrepareError ends the loop when an attempt cannot be
// prepared (the agent failed to restore a checkpoint).
func TestRunWithRestartsPrepareError(t *testing.T) {
	r := newTestReaper(t, ReaperOptions{})
	s := newTestSupervisor(t, r)
	boom := errors.New("restore failed")
	p := Policy{MaxRestarts: 5, Sleep: func(context.Context, time.Duration) error { return nil }}
	exit, err := s.RunWithRestarts(testContext(t), p, func(_ context.Context, attempt int) (Spec, error) {
		if attempt == 1 {
			return Spec{}, boom
		}
		return failingTrainer(attempt, 99), nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	if exit.Code != 1 {
		t.Errorf("exit = %v, want the failed attempt 0", exit)
	}
}

// TestInterruptRestarts interrupts a trainer that ignores SIGTERM (a hung
// one): it is killed after the grace period, the exit is not a requested
// stop, and the policy starts it again.
func TestInterruptRestarts(t *testing.T) {
	r := newTestReaper(t, ReaperOptions{})
	s := newTestSupervisor(t, r)
	if s.Interrupt(0) || s.Running() {
		t.Error("Interrupt or Running with no trainer running reported one")
	}
	out := newLineWatch("hung 0")
	go func() {
		select {
		case <-out.seen("hung 0"):
			if !s.Running() {
				t.Error("Running is false while the trainer runs")
			}
			if !s.Interrupt(syscall.SIGTERM) {
				t.Error("Interrupt found no trainer running")
			}
		case <-t.Context().Done():
		}
	}()
	var attempts []int
	var exits []Exit
	p := Policy{MaxRestarts: 1, Sleep: func(context.Context, time.Duration) error { return nil },
		OnExit: func(_ int, e Exit, _ bool) { exits = append(exits, e) }}
	exit, err := s.RunWithRestarts(testContext(t), p, func(_ context.Context, attempt int) (Spec, error) {
		attempts = append(attempts, attempt)
		if attempt == 0 {
			spec := shSpec("trap '' TERM\necho hung 0\nexec sleep 1000")
			spec.Stdout, spec.Grace = out, 50*time.Millisecond
			return spec, nil
		}
		return shSpec("exit 0"), nil
	})
	if err != nil {
		t.Fatalf("RunWithRestarts: %v", err)
	}
	if !slices.Equal(attempts, []int{0, 1}) || !exit.Success() {
		t.Fatalf("attempts %v ending in %v; want [0 1] ending in success", attempts, exit)
	}
	if first := exits[0]; first.Signal != syscall.SIGKILL || !first.Escalated || first.Stopped {
		t.Errorf("interrupted attempt = %+v; want killed after the grace period, not a requested stop", first)
	}
	if s.StopRequested() {
		t.Error("Interrupt left the supervisor stopped")
	}
}
