package priority

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The tests that renice run in a child process of the test binary (see
// inChild): a process cannot take a lowered niceness back without
// privilege, and the other tests must not run lowered.
const childEnv = "BATON_PRIORITY_TEST_CHILD"

func init() {
	// TestThreadNeverMain's child keeps its main goroutine on the main
	// thread from here on.
	if os.Getenv(childEnv) == "TestThreadNeverMain" {
		runtime.LockOSThread()
	}
}

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "TestThreadNeverMain" {
		os.Exit(threadNeverMainChild())
	}
	os.Exit(m.Run())
}

// inChild runs the calling test again in a child process with body, and
// fails the test with the child's output if the child fails. It returns
// false in the parent, true in the child (which then runs the body).
func inChild(t *testing.T) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err == nil && strings.Contains(string(out), "--- SKIP: "+t.Name()) {
		t.Skipf("child skipped:\n%s", out)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
	return false
}

// startNice is the niceness the test process started with; the tests need
// room above it.
func startNice(t *testing.T) int {
	t.Helper()
	n, err := Nice(0)
	if err != nil {
		t.Fatal(err)
	}
	if n >= MaxNice {
		t.Skipf("started at nice %d: no lower priority to test", n)
	}
	return n
}

// checkThreads fails the test unless every thread of the process has
// niceness want, except keep, which has keptNice.
func checkThreads(t *testing.T, want int, keep *Thread, keptNice int) {
	t.Helper()
	tids, err := threads()
	if err != nil {
		t.Fatal(err)
	}
	lowered := 0
	for _, tid := range tids {
		n, err := Nice(tid)
		if errors.Is(err, unix.ESRCH) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case tid == keep.TID() && n != keptNice:
			t.Errorf("kept thread %d: nice %d, want %d (the start's)", tid, n, keptNice)
		case tid != keep.TID() && n != want:
			t.Errorf("thread %d (%s): nice %d, want %d", tid, threadName(tid), n, want)
		case tid != keep.TID():
			lowered++
		}
	}
	t.Logf("%d threads at nice %d, the kept one at %d", lowered, want, keptNice)
}

func threadName(tid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/comm", tid))
	return strings.TrimSpace(string(b))
}

// procNice reads the niceness of process pid from /proc/PID/stat (field
// 19), as ps and top show it.
func procNice(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	n, err := strconv.Atoi(f[19-3])
	if err != nil {
		t.Fatalf("/proc/%d/stat: %v", pid, err)
	}
	return n
}

// startSleep starts sleep, through th when it is not nil, and returns it
// with its kill-and-wait.
func startSleep(t *testing.T, th *Thread) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "30")
	var err error
	if th != nil {
		if derr := th.Do(func() { err = cmd.Start() }); derr != nil {
			t.Fatal(derr)
		}
	} else {
		err = cmd.Start()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// TestLowerKeepsTheChildsPriority lowers every thread but a kept one and
// starts a child on the kept thread and one elsewhere: the first has the
// process's starting niceness and I/O priority, the second baton's
// lowered ones.
func TestLowerKeepsTheChildsPriority(t *testing.T) {
	if !inChild(t) {
		return
	}
	start := startNice(t)
	// An explicit best-effort I/O priority above level 7 (as ionice -c2
	// -n0 would leave), on every thread, so that Lower has one to lower.
	tids, err := threads()
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range tids {
		if err := setIOPriority(tid, IOClassBestEffort, 0); err != nil {
			t.Fatal(err)
		}
	}
	th := NewThread()
	defer th.Close()
	if th.TID() == os.Getpid() {
		t.Fatal("the kept thread is the main thread")
	}
	res, err := Lower(MaxNice, th)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.From != start || res.Kept != 1 || res.Threads == 0 || res.IO == 0 {
		t.Errorf("Lower: %+v, want From %d, Kept 1, some threads and I/O priorities lowered", res, start)
	}
	checkThreads(t, MaxNice, th, start)
	if n := procNice(t, os.Getpid()); n != MaxNice {
		t.Errorf("the process (its main thread) shows nice %d, want %d", n, MaxNice)
	}

	kept, other := startSleep(t, th), startSleep(t, nil)
	if n := procNice(t, kept.Process.Pid); n != start {
		t.Errorf("child started on the kept thread: nice %d, want %d (the start's)", n, start)
	}
	if n := procNice(t, other.Process.Pid); n != MaxNice {
		t.Errorf("child started elsewhere: nice %d, want %d (inherited from a lowered thread)", n, MaxNice)
	}
	if c, l, err := IOPriority(kept.Process.Pid); err != nil || c != IOClassBestEffort || l != 0 {
		t.Errorf("child started on the kept thread: I/O class %d level %d (%v), want best-effort 0 (the start's)", c, l, err)
	}
	if c, l, err := IOPriority(other.Process.Pid); err != nil || c != IOClassBestEffort || l != 7 {
		t.Errorf("child started elsewhere: I/O class %d level %d (%v), want best-effort 7", c, l, err)
	}
}

// TestNewThreadsAreLowered lowers the process while goroutines keep
// creating and ending OS threads, then makes the runtime create many more,
// from ordinary threads and from the kept one (through the template
// thread): every thread but the kept one ends lowered, and a child started
// on the kept thread still gets the start's niceness.
func TestNewThreadsAreLowered(t *testing.T) {
	if !inChild(t) {
		return
	}
	start := startNice(t)
	th := NewThread()
	defer th.Close()

	// Churn: each goroutine locks a thread and ends, which ends the
	// thread, so the runtime keeps making new ones while Lower runs.
	stop := make(chan struct{})
	var churn sync.WaitGroup
	for range 4 {
		churn.Add(1)
		go func() {
			defer churn.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				done := make(chan struct{})
				go func() {
					runtime.LockOSThread()
					unix.Nanosleep(&unix.Timespec{Nsec: 100_000}, nil)
					close(done)
				}()
				<-done
			}
		}()
	}
	// And threads that appear after the first listing, all cloned from
	// threads not yet lowered: a second pass must find them.
	release := make(chan struct{})
	var held sync.WaitGroup
	hold := func(n int) {
		for range n {
			held.Add(1)
			go func() {
				defer held.Done()
				runtime.LockOSThread()
				var p [2]int
				if err := unix.Pipe(p[:]); err != nil {
					return
				}
				go func() { <-release; unix.Close(p[1]) }()
				var b [1]byte
				unix.Read(p[0], b[:]) // blocks in the kernel until release
				unix.Close(p[0])
			}()
		}
	}
	late := 0
	testHookListed = func(pass int) {
		if pass == 1 {
			before, _ := threads()
			hold(10)
			time.Sleep(50 * time.Millisecond)
			after, _ := threads()
			late = len(after) - len(before)
		}
	}
	defer func() { testHookListed = nil }()
	time.Sleep(20 * time.Millisecond)
	res, err := Lower(MaxNice, th)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v; %d threads appeared after the first listing", res, late)
	if late < 5 || res.Passes < 2 {
		t.Errorf("%d threads appeared after the first listing and Lower took %d passes: the test did not test the passes", late, res.Passes)
	}
	time.Sleep(20 * time.Millisecond)
	close(stop)
	churn.Wait()
	checkThreads(t, MaxNice, th, start)

	// Many more threads, made after Lower: goroutines that hold theirs in
	// a blocking system call, started from an ordinary goroutine and from
	// the kept thread.
	before, _ := threads()
	hold(20)
	if err := th.Do(func() { hold(20) }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	after, _ := threads()
	t.Logf("threads: %d before, %d with 40 more held", len(before), len(after))
	if len(after) < len(before)+20 {
		t.Errorf("only %d new threads: the test did not make the runtime create threads", len(after)-len(before))
	}
	checkThreads(t, MaxNice, th, start)
	close(release)
	held.Wait()

	if n := procNice(t, startSleep(t, th).Process.Pid); n != start {
		t.Errorf("child started on the kept thread: nice %d, want %d", n, start)
	}
}

// TestThreadNeverMain: a Thread made on the main thread hands over to
// another and lets the main thread go (threadNeverMainChild).
func TestThreadNeverMain(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=TestThreadNeverMain")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child: %s", out)
}

// threadNeverMainChild runs in a process whose main goroutine init locked
// to the main thread: it runs a Thread's start right there.
func threadNeverMainChild() int {
	if unix.Gettid() != unix.Getpid() {
		fmt.Println("not on the main thread: the test cannot run")
		return 1
	}
	th := &Thread{work: make(chan func()), quit: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan int, 1)
	th.run(ready)
	th.tid = <-ready
	if unix.Gettid() != unix.Getpid() {
		fmt.Println("the main goroutine left the main thread")
		return 1
	}
	if th.TID() == unix.Getpid() {
		fmt.Println("the Thread is the main thread")
		return 1
	}
	var tid int
	if err := th.Do(func() { tid = unix.Gettid() }); err != nil || tid != th.TID() {
		fmt.Printf("Do ran on thread %d (%v), want %d\n", tid, err, th.TID())
		return 1
	}
	th.Close()
	fmt.Printf("main thread %d handed over to thread %d\n", unix.Getpid(), tid)
	return 0
}

func TestDo(t *testing.T) {
	th := NewThread()
	var tids []int
	for range 3 {
		if err := th.Do(func() { tids = append(tids, unix.Gettid()) }); err != nil {
			t.Fatal(err)
		}
	}
	for _, tid := range tids {
		if tid != th.TID() {
			t.Errorf("ran on thread %d, want %d", tid, th.TID())
		}
	}
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want boom", p)
			}
		}()
		th.Do(func() { panic("boom") })
	}()
	th.Close()
	th.Close()
	if err := th.Do(func() { t.Error("ran after Close") }); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close: %v, want ErrClosed", err)
	}
	if _, err := Lower(20); err == nil {
		t.Error("Lower(20): no error")
	}
}
