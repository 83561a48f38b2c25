package supervise

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batonrun/baton/internal/testenv"
)

// hangGuard only turns a hang into a clear failure; no test asserts on time.
const hangGuard = 2 * time.Minute

// await fails the test if ch is not ready before the hang guard.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(hangGuard):
		t.Fatalf("gave up waiting for %s", what)
		panic("unreachable")
	}
}

// testContext is the test's context with the hang guard as its deadline.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	t.Cleanup(cancel)
	return ctx
}

// newTestReaper starts a Reaper that the test closes when it ends. Tests run
// one at a time, so only one Reaper is live in the process.
func newTestReaper(t *testing.T, opts ReaperOptions) *Reaper {
	t.Helper()
	r := NewReaper(opts)
	t.Cleanup(func() { r.Close() })
	return r
}

// realPython is the interpreter behind python3, resolved before any Reaper
// runs (exec.Cmd.Output waits for its child): the pyenv shim forks helpers
// of its own.
func realPython(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		testenv.Unavailable(t, "python3 is not available: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// lineWatch is an output writer that keeps everything written to it, passes
// it on to an optional writer, and announces chosen complete lines.
type lineWatch struct {
	mu      sync.Mutex
	all     bytes.Buffer
	partial []byte
	pass    interface{ Write([]byte) (int, error) }
	want    map[string]chan struct{}
}

func newLineWatch(lines ...string) *lineWatch {
	w := &lineWatch{want: make(map[string]chan struct{})}
	for _, l := range lines {
		w.want[l] = make(chan struct{})
	}
	return w
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(p)
	if w.pass != nil {
		w.pass.Write(p)
	}
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := string(w.partial[:i])
		w.partial = w.partial[i+1:]
		if ch, ok := w.want[line]; ok {
			close(ch)
			delete(w.want, line)
		}
	}
	return len(p), nil
}

// seen is closed once line has been written. line must be one given to
// newLineWatch.
func (w *lineWatch) seen(line string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch, ok := w.want[line]; ok {
		return ch
	}
	done := make(chan struct{})
	close(done)
	return done
}

func (w *lineWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.all.String()
}

// proc is one line of /proc/<pid>/stat.
type proc struct {
	pid, ppid int
	state     byte
}

// readProc parses /proc/<pid>/stat; ok is false once the process is gone.
func readProc(pid int) (p proc, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return proc{}, false
	}
	// pid (comm) state ppid …; comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return proc{}, false
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 2 {
		return proc{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	return proc{pid: pid, ppid: ppid, state: f[0][0]}, true
}

// procs lists every process visible in /proc.
func procs() []proc {
	ents, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

// zombieChildren lists the zombies whose parent is ppid.
func zombieChildren(ppid int) []int {
	var z []int
	for _, p := range procs() {
		if p.ppid == ppid && p.state == 'Z' {
			z = append(z, p.pid)
		}
	}
	return z
}

// subreaper makes the test process a child subreaper for the rest of the
// test, so that orphans of its trainers come back to it.
func subreaper(t *testing.T) {
	t.Helper()
	if err := BecomeSubreaper(); err != nil {
		t.Fatalf("BecomeSubreaper: %v", err)
	}
	t.Cleanup(func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
}

// newTestSupervisor returns a Supervisor whose running trainer, if a failed
// test leaves one, is killed with its group when the test ends.
func newTestSupervisor(t *testing.T, r *Reaper) *Supervisor {
	t.Helper()
	s := NewSupervisor(r, nil)
	t.Cleanup(func() { s.Stop(syscall.SIGKILL) })
	return s
}

// runResult is what Supervisor.Run returned.
type runResult struct {
	exit Exit
	err  error
}

// startRun calls s.Run in the background; the channel delivers its result.
func startRun(ctx context.Context, s *Supervisor, spec Spec) <-chan runResult {
	done := make(chan runResult, 1)
	go func() {
		exit, err := s.Run(ctx, spec)
		done <- runResult{exit, err}
	}()
	return done
}

// awaitRun waits for the Run that startRun began and returns its result.
func awaitRun(t *testing.T, done <-chan runResult) (Exit, error) {
	t.Helper()
	res := await(t, done, "Run")
	return res.exit, res.err
}

// pyOrphans begins the Python trainers that leave orphans: it imports os,
// signal and sys and defines pause(), which waits for signals until one ends
// the process, and orphan(body), which runs body in a grandchild whose parent
// exits at once, so that the grandchild is orphaned.
const pyOrphans = `
import os, signal, sys

def pause():
    while True:
        signal.pause()

def orphan(body):
    mid = os.fork()
    if mid == 0:
        if os.fork() == 0:
            body()
            os._exit(0)
        os._exit(0)
    os.waitpid(mid, 0)
`
