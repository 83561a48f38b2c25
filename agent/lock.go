package agent

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// errHeldHere: another baton run of this machine holds the checkpoint
// directory.
var errHeldHere = errors.New("another baton run on this machine is running this checkpoint directory")

// hostLock is this machine's claim on a checkpoint directory: an exclusive
// flock(2) on a file beside it, which the kernel drops when the process
// dies however it dies. The file also names the lease holder that held it
// last, so a baton that gets the lock knows that holder is gone: provably,
// since its lock is free, and may take its lease over at once.
type hostLock struct{ f *os.File }

// lockPath is the lock file of dir: beside it, so that a restore that swaps
// the directory (a new inode) does not swap the lock too.
func lockPath(dir string) string {
	return filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".baton-lock")
}

// takeHostLock takes dir's lock for holder, or fails with errHeldHere
// naming the holder that has it. It returns the holder that had it before
// on this machine ("" if none): the file also records the machine (boot id
// and host name), and a holder recorded by another machine proves nothing,
// since a lock on a network volume may not be seen across machines.
func takeHostLock(dir, holder string) (*hostLock, string, error) {
	machine := machineID()
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, "", err
	}
	f, err := os.OpenFile(lockPath(dir), os.O_CREATE|os.O_RDWR, 0o644)
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, unix.EROFS) {
		// The directory's parent is not ours to write (a mount point right
		// under /, as a user without root): no claim, and no proof either.
		return &hostLock{}, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("locking %s: %w", dir, err)
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	for errors.Is(err, unix.EINTR) {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	prev, _ := io.ReadAll(f)
	last, lastMachine, _ := strings.Cut(strings.TrimSpace(string(prev)), "\n")
	switch {
	case errors.Is(err, unix.EWOULDBLOCK):
		f.Close()
		return nil, "", fmt.Errorf("%w (held by %s, lock file %s)", errHeldHere, orUnknown(last), lockPath(dir))
	case errors.Is(err, unix.ENOLCK) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS):
		// A file system without locks: no claim, and no proof either.
		f.Close()
		return &hostLock{}, "", nil
	case err != nil:
		f.Close()
		return nil, "", fmt.Errorf("locking %s: %w", dir, err)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, "", err
	}
	if lastMachine != machine {
		last = ""
	}
	if _, err := f.WriteAt([]byte(holder+"\n"+machine+"\n"), 0); err != nil {
		f.Close()
		return nil, "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, "", err
	}
	return &hostLock{f: f}, last, nil
}

// release drops the lock (the process's exit does too).
func (l *hostLock) release() {
	if l != nil && l.f != nil {
		l.f.Close()
	}
}

// machineID names this kernel and this container: a lock recorded under
// another name was taken somewhere else.
func machineID() string {
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	host, _ := os.Hostname()
	return strings.TrimSpace(string(boot)) + "/" + host
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown holder"
	}
	return s
}
