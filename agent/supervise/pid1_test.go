package supervise

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batonrun/baton/internal/testenv"
)

// helperEnv makes the test binary act as a helper instead of running tests.
const helperEnv = "BATON_SUPERVISE_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "pid1":
		os.Exit(pid1Main())
	case "priority":
		os.Exit(priorityMain())
	}
	os.Exit(m.Run())
}

// pid1Trainer starts a grandchild in its group that writes argv[1]/grandchild-term
// when SIGTERM reaches it, leaves three orphans that exit at once, two that
// stay in its group until a signal ends them and one that escapes the group
// (setsid) and lives on. On SIGTERM it says "saving", waits for the
// grandchild and exits 0.
const pid1Trainer = pyOrphans + `
d = sys.argv[1]

r, w = os.pipe()
gc = os.fork()
if gc == 0:
    def onterm(*_):
        with open(os.path.join(d, "grandchild-term"), "w") as f:
            f.write("term\n")
        os._exit(0)
    signal.signal(signal.SIGTERM, onterm)
    os.write(w, b"x")
    pause()
os.close(w)
os.read(r, 1)

def escape():
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    pause()

for _ in range(3):
    orphan(lambda: os._exit(0))
for _ in range(2):
    orphan(pause)
orphan(escape)

def onterm(*_):
    print("saving", flush=True)
    os.waitpid(gc, 0)
    sys.exit(0)
signal.signal(signal.SIGTERM, onterm)
print("ready", flush=True)
pause()
`

// pid1Ready is the helper's first report: the trainer is ready and its three
// short-lived orphans have been reaped.
type pid1Ready struct {
	PID     int
	Orphans int
	Zombies []int
}

// pid1Final is the helper's last report, once every process but itself is
// gone.
type pid1Final struct {
	Exit    Exit
	RunErr  string
	Orphans int
	Zombies []int
	Others  []int
}

// pid1Main is baton's supervision as PID 1 of a PID namespace: a Reaper, a
// Supervisor, SIGTERM and SIGINT forwarded. It reports on stdout as JSON and
// exits with the trainer's status.
func pid1Main() int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "pid1 helper: "+format+"\n", args...)
		return 100
	}
	if os.Getpid() != 1 {
		// kill(-1) below would reach every process of the host.
		return fail("pid %d is not 1", os.Getpid())
	}
	ctx := context.Background()
	orphans := make(chan Exit, 64)
	r := NewReaper(ReaperOptions{OnOrphan: func(e Exit) { orphans <- e }})
	defer r.Close()
	s := NewSupervisor(r, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go s.Forward(ctx, sigs)

	out := newLineWatch("ready")
	out.pass = os.Stderr
	done := startRun(ctx, s, Spec{
		Path: os.Getenv("BATON_TEST_PYTHON"), Args: []string{"-c", pid1Trainer, os.Getenv("BATON_TEST_DIR")},
		Stdout: out, Stderr: out, Grace: time.Minute,
	})
	select {
	case <-out.seen("ready"):
	case res := <-done:
		return fail("trainer ended before it was ready: %v, %v", res.exit, res.err)
	}
	for range 3 {
		<-orphans
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(pid1Ready{PID: os.Getpid(), Orphans: r.Orphans(), Zombies: zombies()}); err != nil {
		return fail("report: %v", err)
	}

	res := <-done
	// What the kernel does when PID 1 exits: end the rest of the namespace.
	// ESRCH: nothing is left to end, as when the trainer's descendants
	// have all exited already.
	if err := unix.Kill(-1, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fail("kill(-1): %v", err)
	}
	if err := r.WaitAll(ctx); err != nil {
		return fail("WaitAll: %v", err)
	}
	final := pid1Final{Exit: res.exit, Orphans: r.Orphans(), Zombies: zombies()}
	for _, p := range procs() {
		if p.pid != 1 {
			final.Others = append(final.Others, p.pid)
		}
	}
	if res.err != nil {
		final.RunErr = res.err.Error()
	}
	if err := enc.Encode(final); err != nil {
		return fail("report: %v", err)
	}
	return res.exit.StatusCode()
}

// zombies lists every zombie visible in /proc.
func zombies() []int {
	var z []int
	for _, p := range procs() {
		if p.state == 'Z' {
			z = append(z, p.pid)
		}
	}
	return z
}

// TestPID1 runs the supervision as PID 1 of a new PID namespace with a trainer
// that leaves orphans, then stops it with SIGTERM sent to that PID 1 from
// outside: no zombie remains, the trainer's group got the signal, and the
// trainer's status comes out as the namespace's.
func TestPID1(t *testing.T) {
	python := realPython(t)
	unshare := []string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child"}
	if out, err := exec.Command(unshare[0], append(unshare[1:], "true")...).CombinedOutput(); err != nil {
		msg := fmt.Sprintf("%s true: %v: %s", strings.Join(unshare, " "), err, bytes.TrimSpace(out))
		testenv.Unavailable(t, "cannot make a PID namespace (needs root or user namespaces): %s", msg)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// --kill-child: if unshare is killed (the hang guard), PID 1 and its
	// namespace go with it.
	cmd := exec.CommandContext(testContext(t), unshare[0], append(unshare[1:], self, "-test.run=^$")...)
	cmd.Env = append(os.Environ(), helperEnv+"=pid1", "BATON_TEST_DIR="+dir, "BATON_TEST_PYTHON="+python)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(stdout)
	fatal := func(format string, args ...any) {
		t.Helper()
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf(format+"\nhelper stderr:\n%s", append(args, stderr.String())...)
	}

	var ready pid1Ready
	if err := dec.Decode(&ready); err != nil {
		fatal("reading the ready report: %v", err)
	}
	if ready.PID != 1 {
		fatal("helper ran as pid %d, want 1", ready.PID)
	}
	if len(ready.Zombies) != 0 || ready.Orphans != 3 {
		t.Errorf("once the trainer was ready: %d orphans reaped, zombies %v; want 3 and none", ready.Orphans, ready.Zombies)
	}

	// The namespace's PID 1, as this namespace sees it, is unshare's child.
	var pid1 []int
	for _, p := range procs() {
		if p.ppid == cmd.Process.Pid {
			pid1 = append(pid1, p.pid)
		}
	}
	if len(pid1) != 1 {
		fatal("children of unshare (pid %d): %v, want one", cmd.Process.Pid, pid1)
	}
	if err := syscall.Kill(pid1[0], syscall.SIGTERM); err != nil {
		fatal("SIGTERM to PID 1 (pid %d here): %v", pid1[0], err)
	}

	var final pid1Final
	if err := dec.Decode(&final); err != nil {
		fatal("reading the final report: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("unshare: %v (want the trainer's status 0)\nhelper stderr:\n%s", err, stderr.String())
	}
	if f := final.Exit; !f.Success() || !f.Stopped || f.Escalated || final.RunErr != "" {
		t.Errorf("trainer exit %+v, run error %q; want status 0 after a graceful stop", f, final.RunErr)
	}
	// 3 short-lived, 2 ended by the group's SIGTERM, 1 escaped and killed.
	if final.Orphans != 6 || len(final.Zombies) != 0 || len(final.Others) != 0 {
		t.Errorf("at the end: %d orphans reaped, zombies %v, other processes %v; want 6, none, none",
			final.Orphans, final.Zombies, final.Others)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "grandchild-term")); err != nil || string(b) != "term\n" {
		t.Errorf("grandchild mark %q, %v: SIGTERM did not reach the trainer's group", b, err)
	}
	if !strings.Contains(stderr.String(), "saving\n") {
		t.Errorf("the trainer did not save; helper stderr:\n%s", stderr.String())
	}
}
