package supervise

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// TestReaperDeliversOwnStatuses starts many children that exit at once, from
// many goroutines, so that some exit before Start returns: each status must
// reach its own Child and none may be counted as an orphan.
func TestReaperDeliversOwnStatuses(t *testing.T) {
	r := newTestReaper(t, ReaperOptions{})
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			c, err := r.Start(exec.Command("/bin/sh", "-c", fmt.Sprintf("exit %d", i)))
			if err != nil {
				errs <- err
				return
			}
			e, err := c.Wait(testContext(t))
			switch {
			case err != nil:
				errs <- err
			case e.Code != i || e.Pid != c.Pid():
				errs <- fmt.Errorf("child %d: got %+v", i, e)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := r.Orphans(); got != 0 {
		t.Errorf("Orphans = %d, want 0", got)
	}
	if err := r.WaitAll(testContext(t)); err != nil {
		t.Errorf("WaitAll: %v", err)
	}
}

func TestReaperStartRejects(t *testing.T) {
	r := newTestReaper(t, ReaperOptions{})
	cases := []struct {
		name string
		cmd  func() *exec.Cmd
	}{
		{"CommandContext", func() *exec.Cmd { return exec.CommandContext(t.Context(), "/bin/true") }},
		{"stdin reader", func() *exec.Cmd {
			c := exec.Command("/bin/true")
			c.Stdin = strings.NewReader("x")
			return c
		}},
		{"missing program", func() *exec.Cmd { return exec.Command("/nonexistent/program") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := r.Start(tc.cmd()); err == nil {
				t.Fatal("Start succeeded")
			}
		})
	}
	r.Close()
	if _, err := r.Start(exec.Command("/bin/true")); !errors.Is(err, ErrReaperClosed) {
		t.Errorf("Start after Close = %v, want ErrReaperClosed", err)
	}
}

// orphanTrainer forks, through a middle process that exits at once, three
// orphans that exit at once, two that outlive the trainer in its process
// group, and one that leaves the group (setsid) and outlives everything; its
// pid goes to argv[1]. Then the trainer exits 5.
const orphanTrainer = pyOrphans + `
for _ in range(3):
    orphan(lambda: os._exit(0))
for _ in range(2):
    orphan(pause)

r, w = os.pipe()
def escape():
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.write(w, str(os.getpid()).encode())
    os.close(w)
    pause()
orphan(escape)
os.close(w)
pid = os.read(r, 32).decode()
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(pid)
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
print("trainer done", flush=True)
sys.exit(5)
`

// TestOrphansReaped runs a trainer that leaves orphans, with the test process
// as child subreaper: every orphan is reaped, no zombie remains, and the
// trainer's own status still reaches the Supervisor.
func TestOrphansReaped(t *testing.T) {
	python := realPython(t)
	subreaper(t)
	orphans := make(chan Exit, 64)
	r := newTestReaper(t, ReaperOptions{OnOrphan: func(e Exit) { orphans <- e }})
	s := newTestSupervisor(t, r)
	pidFile := filepath.Join(t.TempDir(), "escaped")
	out := newLineWatch()
	exit, err := s.Run(testContext(t), Spec{
		Path: python, Args: []string{"-c", orphanTrainer, pidFile},
		Stdout: out, Stderr: out,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if exit.Code != 5 || exit.Signal != 0 {
		t.Fatalf("trainer exit = %+v (output %q), want exit 5", exit, out.String())
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	escaped, err := strconv.Atoi(string(b))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A failed test may leave the escaped orphan running.
		if p, ok := readProc(escaped); ok && p.ppid == os.Getpid() && p.state != 'Z' {
			syscall.Kill(escaped, syscall.SIGKILL)
		}
	})

	// Three orphans exited at once, two were killed with the group.
	reaped := map[syscall.Signal]int{}
	for range 5 {
		e := await(t, orphans, "the trainer's orphans to be reaped")
		if e.Pid == exit.Pid || e.Pid == escaped {
			t.Fatalf("reaped %+v as an orphan (trainer %d, escaped %d)", e, exit.Pid, escaped)
		}
		reaped[e.Signal]++
	}
	if reaped[0] != 3 || reaped[syscall.SIGKILL] != 2 {
		t.Errorf("orphans reaped by signal = %v, want 3 exits and 2 SIGKILLs", reaped)
	}
	if z := zombieChildren(os.Getpid()); len(z) != 0 {
		t.Errorf("zombies left: %v", z)
	}

	// The escaped orphan is still running; once killed it is reaped too.
	if p, ok := readProc(escaped); !ok || p.ppid != os.Getpid() || p.state == 'Z' {
		t.Fatalf("escaped orphan %d: %+v, %v; want a running child of the test process", escaped, p, ok)
	}
	if err := syscall.Kill(escaped, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e := await(t, orphans, "the escaped orphan to be reaped")
	if e.Pid != escaped || e.Signal != syscall.SIGKILL {
		t.Errorf("reaped %+v, want %d killed by SIGKILL", e, escaped)
	}
	if err := r.WaitAll(testContext(t)); err != nil {
		t.Fatalf("WaitAll: %v", err)
	}
	if z := zombieChildren(os.Getpid()); len(z) != 0 {
		t.Errorf("zombies left: %v", z)
	}
	if got := r.Orphans(); got != 6 {
		t.Errorf("Orphans = %d, want 6", got)
	}
	if !strings.Contains(out.String(), "trainer done") {
		t.Errorf("trainer output = %q", out.String())
	}
}
