package supervise

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func shSpec(script string) Spec {
	return Spec{Path: "/bin/sh", Args: []string{"-c", script}}
}

func TestRunExitStatus(t *testing.T) {
	r := newTestReaper(t, ReaperOptions{})
	cases := []struct {
		name       string
		script     string
		wantCode   int
		wantSignal syscall.Signal
		wantStatus int
	}{
		{"exit 0", "exit 0", 0, 0, 0},
		{"exit 3", "exit 3", 3, 0, 3},
		{"killed by SIGKILL", "kill -KILL $$", -1, syscall.SIGKILL, 137},
		{"killed by SIGTERM", "kill -TERM $$", -1, syscall.SIGTERM, 143},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSupervisor(t, r)
			exit, err := s.Run(testContext(t), shSpec(tc.script))
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if exit.Code != tc.wantCode || exit.Signal != tc.wantSignal {
				t.Fatalf("exit = %+v (%v), want code %d signal %v", exit, exit, tc.wantCode, tc.wantSignal)
			}
			if exit.StatusCode() != tc.wantStatus {
				t.Errorf("StatusCode = %d, want %d", exit.StatusCode(), tc.wantStatus)
			}
			if exit.Success() != (tc.wantStatus == 0) {
				t.Errorf("Success = %v for %v", exit.Success(), exit)
			}
			if exit.Stopped || exit.Escalated || exit.Pid <= 0 {
				t.Errorf("exit = %+v, want a pid and no stop", exit)
			}
		})
	}
	if n := r.Orphans(); n != 0 {
		t.Errorf("Reaper counted %d orphans; the trainers' statuses were stolen", n)
	}
}

func TestRunPassesSpec(t *testing.T) {
	r := newTestReaper(t, ReaperOptions{})
	dir := t.TempDir()
	stdout, stderr := newLineWatch(), newLineWatch()
	s := newTestSupervisor(t, r)
	spec := shSpec(`echo "out $BATON_ATTEMPT $(pwd) $1"; echo err >&2`)
	spec.Args = append(spec.Args, "sh", "arg1")
	spec.Env = []string{"BATON_ATTEMPT=4"}
	spec.Dir = dir
	spec.Stdout, spec.Stderr = stdout, stderr
	exit, err := s.Run(testContext(t), spec)
	if err != nil || !exit.Success() {
		t.Fatalf("Run = %v, %v", exit, err)
	}
	if got, want := stdout.String(), "out 4 "+dir+" arg1\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if got := stderr.String(); got != "err\n" {
		t.Errorf("stderr = %q", got)
	}

	// One writer for both streams shares a pipe.
	both := newLineWatch()
	spec = shSpec(`echo one; echo two >&2`)
	spec.Stdout, spec.Stderr = both, both
	if exit, err := s.Run(testContext(t), spec); err != nil || !exit.Success() {
		t.Fatalf("Run = %v, %v", exit, err)
	}
	if got := both.String(); got != "one\ntwo\n" {
		t.Errorf("combined output = %q", got)
	}

	// A file is handed to the trainer as it is.
	f, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	spec = shSpec(`echo to-file`)
	spec.Stdout = f
	if exit, err := s.Run(testContext(t), spec); err != nil || !exit.Success() {
		t.Fatalf("Run = %v, %v", exit, err)
	}
	if b, _ := os.ReadFile(f.Name()); string(b) != "to-file\n" {
		t.Errorf("file output = %q", b)
	}
}

func TestRunStartFailure(t *testing.T) {
	r := newTestReaper(t, ReaperOptions{})
	s := newTestSupervisor(t, r)
	for _, path := range []string{"/nonexistent/trainer", "baton-no-such-trainer"} {
		if _, err := s.Run(testContext(t), Spec{Path: path}); err == nil {
			t.Errorf("Run(%q) succeeded", path)
		}
	}
	if _, err := s.Run(testContext(t), Spec{Path: "/bin/true", Grace: -time.Second}); err == nil {
		t.Error("Run with a negative grace succeeded")
	}
}

func TestStopGraceful(t *testing.T) {
	r := newTestReaper(t, ReaperOptions{})
	s := newTestSupervisor(t, r)
	out := newLineWatch("ready")
	spec := shSpec(`trap 'echo saving; exit 0' TERM
echo ready
sleep 1000 & wait`)
	spec.Stdout = out
	spec.Grace = time.Minute // never reached: the trainer saves and exits

	done := startRun(testContext(t), s, spec)
	await(t, out.seen("ready"), "the trainer to trap SIGTERM")
	select {
	case <-s.Stopping():
		t.Fatal("Stopping closed before any stop")
	default:
	}
	s.Stop(syscall.SIGTERM)
	await(t, s.Stopping(), "Stopping")
	exit, err := awaitRun(t, done)

	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !exit.Success() || !exit.Stopped || exit.Escalated {
		t.Errorf("exit = %+v, want status 0, stopped, not escalated", exit)
	}
	if !strings.Contains(out.String(), "saving\n") {
		t.Errorf("trainer output %q lacks saving", out.String())
	}
	if _, err := s.Run(testContext(t), shSpec("exit 0")); !errors.Is(err, ErrStopRequested) {
		t.Errorf("Run after a stop = %v, want ErrStopRequested", err)
	}
}

func TestStopEscalatesToKill(t *testing.T) {
	r := newTestReaper(t, ReaperOptions{})
	s := newTestSupervisor(t, r)
	out := newLineWatch("ready")
	spec := shSpec(`trap '' TERM
echo ready
exec sleep 1000`)
	spec.Stdout = out
	spec.Grace = 50 * time.Millisecond // the trainer never exits by itself

	done := startRun(testContext(t), s, spec)
	await(t, out.seen("ready"), "the trainer to ignore SIGTERM")
	s.Stop(syscall.SIGTERM)
	exit, err := awaitRun(t, done)

	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if exit.Signal != syscall.SIGKILL || !exit.Stopped || !exit.Escalated {
		t.Errorf("exit = %+v, want killed by SIGKILL after escalation", exit)
	}
}

// TestStopReachesGroup checks that a stop signal reaches the whole group: the
// trainer's child writes a file when it gets SIGTERM.
func TestStopReachesGroup(t *testing.T) {
	cases := []struct {
		name string
		stop func(s *Supervisor, cancel context.CancelFunc, sigs chan<- os.Signal)
		// wantErr is true when the run ends through its context.
		wantErr bool
	}{
		{"Stop", func(s *Supervisor, _ context.CancelFunc, _ chan<- os.Signal) { s.Stop(syscall.SIGTERM) }, false},
		{"Forward", func(_ *Supervisor, _ context.CancelFunc, sigs chan<- os.Signal) { sigs <- syscall.SIGTERM }, false},
		{"context", func(_ *Supervisor, cancel context.CancelFunc, _ chan<- os.Signal) { cancel() }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestReaper(t, ReaperOptions{})
			s := newTestSupervisor(t, r)
			mark := filepath.Join(t.TempDir(), "grandchild-term")
			out := newLineWatch("child-ready", "ready")
			spec := shSpec(`sh -c 'trap "echo term > \"$MARK\"; exit 0" TERM; echo child-ready; sleep 1000 & wait' &
gc=$!
trap 'echo saving; wait $gc; exit 0' TERM
echo ready
wait $gc`)
			spec.Env = append(os.Environ(), "MARK="+mark)
			spec.Stdout = out
			spec.Grace = time.Minute

			ctx, cancel := context.WithCancel(testContext(t))
			defer cancel()
			sigs := make(chan os.Signal, 1)
			go s.Forward(ctx, sigs)
			done := startRun(ctx, s, spec)
			await(t, out.seen("child-ready"), "the grandchild to trap SIGTERM")
			await(t, out.seen("ready"), "the trainer to trap SIGTERM")
			tc.stop(s, cancel, sigs)
			exit, err := awaitRun(t, done)

			if tc.wantErr != (err != nil) || (err != nil && !errors.Is(err, context.Canceled)) {
				t.Fatalf("Run error = %v, want context error %v", err, tc.wantErr)
			}
			if !exit.Success() || !exit.Stopped {
				t.Errorf("exit = %+v, want stopped with status 0", exit)
			}
			b, rerr := os.ReadFile(mark)
			if rerr != nil || string(b) != "term\n" {
				t.Errorf("grandchild mark = %q, %v: SIGTERM did not reach the group", b, rerr)
			}
		})
	}
}

// TestForwardSIGINT checks that SIGINT is forwarded as SIGINT.
func TestForwardSIGINT(t *testing.T) {
	r := newTestReaper(t, ReaperOptions{})
	s := newTestSupervisor(t, r)
	out := newLineWatch("ready")
	spec := shSpec(`trap 'exit 7' INT
trap 'exit 9' TERM
echo ready
sleep 1000 & wait`)
	spec.Stdout = out
	spec.Grace = time.Minute
	sigs := make(chan os.Signal, 1)
	go s.Forward(testContext(t), sigs)
	done := startRun(testContext(t), s, spec)
	await(t, out.seen("ready"), "the trainer to trap SIGINT")
	sigs <- syscall.SIGINT
	exit, err := awaitRun(t, done)
	if err != nil || exit.Code != 7 || !exit.Stopped {
		t.Fatalf("Run = %+v, %v; want exit 7 after SIGINT", exit, err)
	}
}

// TestGroupSurvivorsKilled checks that the trainer's group does not outlive
// it unless KeepGroup is set. The test process is a subreaper, so the
// survivor comes back to its Reaper as an orphan with the signal that ended it.
func TestGroupSurvivorsKilled(t *testing.T) {
	subreaper(t)
	cases := []struct {
		name       string
		keep       bool
		wantSignal syscall.Signal
	}{
		{"default", false, syscall.SIGKILL},
		{"KeepGroup", true, syscall.SIGTERM},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pid")
			orphans := make(chan Exit, 16)
			r := newTestReaper(t, ReaperOptions{OnOrphan: func(e Exit) { orphans <- e }})
			s := newTestSupervisor(t, r)
			// The survivor leaves stdout alone so that Run need not wait for it.
			spec := shSpec(`sleep 1000 >/dev/null 2>&1 &
echo $! > "$PIDFILE.tmp" && mv "$PIDFILE.tmp" "$PIDFILE"
exit 0`)
			spec.Env = append(os.Environ(), "PIDFILE="+pidFile)
			spec.KeepGroup = tc.keep
			exit, err := s.Run(testContext(t), spec)
			if err != nil || !exit.Success() {
				t.Fatalf("Run = %v, %v", exit, err)
			}
			b, err := os.ReadFile(pidFile)
			if err != nil {
				t.Fatal(err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			if tc.keep {
				// Still alive: end it here, with a signal Run never sends.
				if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
					t.Fatalf("survivor %d of KeepGroup gone: %v", pid, err)
				}
			}
			e := await(t, orphans, "the survivor to be reaped")
			if e.Pid != pid || e.Signal != tc.wantSignal {
				t.Errorf("reaped %+v, want pid %d killed by %v", e, pid, tc.wantSignal)
			}
		})
	}
}
