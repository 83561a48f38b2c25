// Package priority puts a process's own work below that of a child it
// starts: [Lower] lowers the CPU priority (raises the niceness) of every
// thread of the process except the [Thread]s it is told to keep, and a child
// forked on a kept Thread ([Thread.Do]) starts at the priority the process
// started with. baton run lowers itself so that a checkpoint commit never
// takes CPU time the trainer wants, while the trainer keeps the niceness
// baton was started with.
//
// # Why threads
//
// On Linux the nice value and the I/O priority belong to each thread, not
// to the process (setpriority(2), NOTES; ioprio_set(2)), and a new thread or
// a child process inherits them from the thread that creates it (fork(2),
// clone(2)). Raising the niceness needs no privilege; lowering it back needs
// CAP_SYS_NICE or an RLIMIT_NICE allowance, which a container usually lacks
// (Docker's default capabilities do not include CAP_SYS_NICE). A process that
// reniced itself whole could never start a child at its old priority again;
// one whose every thread but one is reniced can, by forking on that one.
//
// # Go's threads
//
// The Go runtime creates threads (Ms) as it needs them. In runtime/proc.go,
// newm clones the new thread from the thread that asks for it, except when
// that thread is locked to a goroutine (runtime.LockOSThread) or in a cgo
// call: then the runtime's template thread, started by the first
// LockOSThread, creates it. A Thread is a goroutine locked to its OS thread
// for its whole life, so that thread runs nothing but what [Thread.Do] gives
// it and never creates a thread itself. Lower renices every other thread, the
// template thread and sysmon's included, and repeats until a pass finds none
// left at a higher priority, since a thread it had not reached yet may have
// created another meanwhile. From then on every new thread is cloned from a
// lowered one (with cgo, through pthread_create from one) and starts
// lowered.
//
// # I/O priority
//
// A thread whose I/O priority was never set gets one derived from its
// niceness at each request (best-effort level (nice+20)/5: 7 at nice 19;
// ioprio_set(2), and get_current_ioprio in Linux 6.0 and later), so the
// niceness carries it. Lower also lowers an explicit best-effort level that
// is higher than that (a process started under ionice -c2 -n0). The
// real-time and idle classes are left as they are.
//
// Nothing here changes the kept threads, so a child started on one gets
// exactly the niceness and I/O priority of the process's start, whatever
// they were.
package priority

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// MaxNice is the highest niceness Linux has (the lowest priority): a
// thread at nice 19 weighs 15 against 1024 at nice 0 in the kernel's fair
// scheduler, about 1.5% of a core it shares with one busy thread at nice 0.
const MaxNice = 19

// ErrClosed is returned by [Thread.Do] after [Thread.Close].
var ErrClosed = errors.New("priority: thread closed")

// maxPasses bounds Lower's passes over the process's threads. A pass that
// renices nothing ends it; the runtime creates threads one at a time and
// only as it needs them, so two or three passes are the rule.
const maxPasses = 100

// testHookListed, when set, is called in each pass of Lower between the
// listing of the threads and their renicing.
var testHookListed func(pass int)

// Lowered is what [Lower] did.
type Lowered struct {
	// From is the niceness of the first kept thread: the one a child
	// started on it gets. Without a kept thread, the calling thread's
	// niceness before Lower.
	From int
	// Nice is the niceness the process's other threads have now: the one
	// asked for, or higher where a thread already had a higher one.
	Nice int
	// Threads is how many threads Lower reniced, Kept how many it left
	// alone because they were kept.
	Threads, Kept int
	// IO is how many of the reniced threads' explicit best-effort I/O
	// priority it lowered too.
	IO int
	// Passes is how many passes over the threads it took.
	Passes int
}

// Lower sets the niceness of every thread of the process, except those of
// keep, to nice (0 to 19; a thread already at a higher niceness keeps
// it), and lowers an explicit best-effort I/O priority above level
// (nice+20)/5 to that level. Threads created while it runs are reniced
// too: it passes over /proc/self/task until a pass finds nothing left to
// do. It needs no privilege. It fails on the first thread it may not
// renice (EPERM or EACCES: a seccomp filter, a security module), leaving
// the threads it reniced before that as they are.
func Lower(nice int, keep ...*Thread) (Lowered, error) {
	if nice < -20 || nice > MaxNice {
		return Lowered{}, fmt.Errorf("priority: niceness %d out of -20..%d", nice, MaxNice)
	}
	kept := make(map[int]bool, len(keep))
	for _, t := range keep {
		kept[t.tid] = true
	}
	res := Lowered{Nice: nice}
	var err error
	if len(keep) > 0 {
		res.From, err = Nice(keep[0].tid)
	} else {
		res.From, err = Nice(0)
	}
	if err != nil {
		return res, err
	}
	ioLevel := (nice + 20) / 5
	for res.Passes < maxPasses {
		res.Passes++
		tids, err := threads()
		if err != nil {
			return res, err
		}
		if testHookListed != nil {
			testHookListed(res.Passes)
		}
		changed, k := 0, 0
		for _, tid := range tids {
			if kept[tid] {
				k++
				continue
			}
			cur, err := Nice(tid)
			if errors.Is(err, unix.ESRCH) {
				continue // it exited
			}
			if err != nil {
				return res, err
			}
			if cur < nice {
				if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil {
					if errors.Is(err, unix.ESRCH) {
						continue
					}
					return res, fmt.Errorf("priority: setpriority(thread %d, nice %d): %w", tid, nice, err)
				}
				changed++
				res.Threads++
			}
			if class, level, err := IOPriority(tid); err == nil && class == IOClassBestEffort && level < ioLevel {
				if err := setIOPriority(tid, IOClassBestEffort, ioLevel); err != nil && !errors.Is(err, unix.ESRCH) {
					return res, err
				}
				changed++
				res.IO++
			}
		}
		res.Kept = k
		if changed == 0 {
			return res, nil
		}
	}
	return res, fmt.Errorf("priority: threads still appearing at a higher priority after %d passes", maxPasses)
}

// Nice is the niceness of the thread tid of this process (0: the calling
// thread), -20 to 19.
func Nice(tid int) (int, error) {
	// The system call returns 20 - nice, so that no success is negative.
	p, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		return 0, fmt.Errorf("priority: getpriority(thread %d): %w", tid, err)
	}
	return 20 - p, nil
}

// I/O scheduling classes (linux/ioprio.h).
const (
	// IOClassNone: none set; the kernel derives best-effort (nice+20)/5.
	IOClassNone = 0
	// IOClassRealTime is the real-time class.
	IOClassRealTime = 1
	// IOClassBestEffort is the default class, levels 0 (highest) to 7.
	IOClassBestEffort = 2
	// IOClassIdle gets the disk only when no one else wants it.
	IOClassIdle = 3
)

const (
	ioprioWhoProcess = 1
	ioprioClassShift = 13
)

// IOPriority is the I/O scheduling class and level of the thread tid (0:
// the calling thread), as set with ioprio_set; class [IOClassNone] means
// none was set.
func IOPriority(tid int) (class, level int, err error) {
	r, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
	if errno != 0 {
		return 0, 0, fmt.Errorf("priority: ioprio_get(thread %d): %w", tid, errno)
	}
	return int(r) >> ioprioClassShift, int(r) & (1<<ioprioClassShift - 1), nil
}

func setIOPriority(tid, class, level int) error {
	_, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), uintptr(class<<ioprioClassShift|level))
	if errno != 0 {
		return fmt.Errorf("priority: ioprio_set(thread %d, class %d level %d): %w", tid, class, level, errno)
	}
	return nil
}

// threads lists the thread ids of this process.
func threads() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("priority: listing the threads: %w", err)
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// A Thread is a goroutine locked to an OS thread of its own, which runs the
// functions given to [Thread.Do] one at a time and nothing else. [Lower]
// leaves it alone when it is one of Lower's keep, so a process started by a
// function it runs inherits the thread's niceness and I/O priority: those
// of the process's start, when the Thread was made before any Lower. Make it
// with [NewThread]; [Thread.Close] ends it and its OS thread.
type Thread struct {
	tid       int
	work      chan func()
	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// NewThread starts a Thread. It is never the process's main thread, whose
// niceness ps and top show for the whole process: that one is lowered with
// the rest.
func NewThread() *Thread {
	t := &Thread{work: make(chan func()), quit: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan int)
	go t.run(ready)
	t.tid = <-ready
	return t
}

// run locks the goroutine to its thread, for good: it never unlocks, so
// the thread ends with it (runtime.LockOSThread).
func (t *Thread) run(ready chan<- int) {
	runtime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		// The main thread. While this goroutine holds it, the next one
		// cannot get it: hand over, then let the main thread go.
		next := make(chan int)
		go t.run(next)
		ready <- <-next
		runtime.UnlockOSThread()
		return
	}
	ready <- unix.Gettid()
	defer close(t.done)
	for {
		select {
		case f := <-t.work:
			f()
		case <-t.quit:
			return
		}
	}
}

// TID is the thread's id.
func (t *Thread) TID() int { return t.tid }

// Do runs f on the thread and returns when it has; a panic in f is raised
// again in Do's caller. It returns [ErrClosed] without running f once the
// Thread is closed.
func (t *Thread) Do(f func()) error {
	done := make(chan any, 1)
	job := func() {
		defer func() { done <- recover() }()
		f()
	}
	select {
	case t.work <- job:
	case <-t.quit:
		return ErrClosed
	}
	if p := <-done; p != nil {
		panic(p)
	}
	return nil
}

// Close ends the Thread and its OS thread once what it runs has returned.
func (t *Thread) Close() {
	t.closeOnce.Do(func() { close(t.quit) })
	<-t.done
}
