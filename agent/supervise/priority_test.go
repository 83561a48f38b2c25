package supervise

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/batonrun/baton/internal/priority"
)

// priorityReport is what the priority helper found: the niceness it
// started with, that of its threads after priority.Lower, and those of
// the trainers it started.
type priorityReport struct {
	Start    int
	Lowered  priority.Lowered
	Threads  map[int]int // niceness by thread id, the kept one left out
	Attempts []int       // each attempt's niceness, through the kept thread
	Plain    int         // a trainer started by a Reaper without Spawn
}

// priorityMain is baton run's wiring: a kept thread made before anything is
// lowered, a Reaper that starts children on it, priority.Lower, then a
// trainer, restarted once, that reports its own niceness. It reports on
// stdout as JSON.
func priorityMain() int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "priority helper: "+format+"\n", args...)
		return 100
	}
	ctx := context.Background()
	var rep priorityReport
	var err error
	if rep.Start, err = priority.Nice(0); err != nil {
		return fail("%v", err)
	}
	th := priority.NewThread()
	defer th.Close()
	r := NewReaper(ReaperOptions{Spawn: th.Do})
	if rep.Lowered, err = priority.Lower(priority.MaxNice, th); err != nil {
		return fail("Lower: %v", err)
	}
	// The trainer: cat of its own /proc stat, whose field 19 is its nice.
	niceOf := func(out string) (int, error) {
		f := strings.Fields(out[strings.LastIndexByte(out, ')')+2:])
		return strconv.Atoi(f[19-3])
	}
	var outs []*lineWatch
	s := NewSupervisor(r, nil)
	_, err = s.RunWithRestarts(ctx, Policy{MaxRestarts: 1}, func(ctx context.Context, attempt int) (Spec, error) {
		outs = append(outs, newLineWatch())
		return Spec{Path: "sh", Args: []string{"-c", `cat /proc/self/stat; [ "$0" = 2 ]`, strconv.Itoa(attempt)},
			Stdout: outs[len(outs)-1]}, nil
	})
	if err != nil {
		return fail("RunWithRestarts: %v", err)
	}
	for _, out := range outs {
		n, err := niceOf(out.String())
		if err != nil {
			return fail("trainer's stat %q: %v", out.String(), err)
		}
		rep.Attempts = append(rep.Attempts, n)
	}
	r.Close()

	plain := NewReaper(ReaperOptions{})
	out := newLineWatch()
	exit, err := NewSupervisor(plain, nil).Run(ctx, Spec{Path: "cat", Args: []string{"/proc/self/stat"}, Stdout: out})
	plain.Close()
	if err != nil || !exit.Success() {
		return fail("plain Run: %v, %v", exit, err)
	}
	if rep.Plain, err = niceOf(out.String()); err != nil {
		return fail("plain trainer's stat %q: %v", out.String(), err)
	}

	rep.Threads = map[int]int{}
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fail("%v", err)
	}
	for _, e := range ents {
		tid, _ := strconv.Atoi(e.Name())
		if tid == th.TID() {
			continue
		}
		if n, err := priority.Nice(tid); err == nil {
			rep.Threads[tid] = n
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		return fail("report: %v", err)
	}
	return 0
}

// TestTrainerKeepsItsPriority runs baton run's wiring in a helper process
// (a process cannot take a lowered niceness back without privilege): with
// every thread of baton but the kept one at nice 19, the trainer, started
// and restarted through the Reaper's Spawn, has the niceness the helper
// started with; a trainer started by a Reaper without Spawn inherits 19.
// As root (CI in a container) the start may be anything, so the test
// compares with it rather than with 0.
func TestTrainerKeepsItsPriority(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(testContext(t), self, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=priority")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, stderr.String())
	}
	var rep priorityReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("helper's report %q: %v", out, err)
	}
	t.Logf("%+v", rep)
	if rep.Start >= priority.MaxNice {
		t.Skipf("the helper started at nice %d: nothing to lower", rep.Start)
	}
	if len(rep.Attempts) != 2 || rep.Attempts[0] != rep.Start || rep.Attempts[1] != rep.Start {
		t.Errorf("trainer attempts at nice %v, want two at %d (the start's)", rep.Attempts, rep.Start)
	}
	if rep.Plain != priority.MaxNice {
		t.Errorf("a trainer started without Spawn: nice %d, want %d (inherited from a lowered thread)", rep.Plain, priority.MaxNice)
	}
	if len(rep.Threads) == 0 {
		t.Error("no thread reported")
	}
	for tid, n := range rep.Threads {
		if n != priority.MaxNice {
			t.Errorf("thread %d at nice %d, want %d", tid, n, priority.MaxNice)
		}
	}
}
