package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/agent/platform"
)

// Scrub (issue 17 item 1): when the run ends and everything the trainer
// saved is in the store, baton deletes what it put on this machine (the
// checkpoint directory, each --data DST, the --code-dir when --code is set,
// the trainer's log copy and its own files) before any exit action, so that
// a rented machine's next tenant finds none of it. docs/run.md, "Scrub",
// says what it removes, when it does not, and what it cannot promise.

// scrubWanted reports whether this run scrubs at its end, and why: --scrub
// as set, else on when --on-exit is stop or terminate (the machine is given
// back or left to the provider) or on Vast.ai (a marketplace of other
// people's machines). RunPod's Community Cloud pods would deserve the same,
// but nothing inside a pod tells them from Secure Cloud ones (RunPod
// documents no such variable), so on RunPod the rule is --on-exit's alone.
func (a *agent) scrubWanted() (bool, string) {
	if o := a.cfg.Origin("scrub"); o.Source != config.SourceDefault {
		return a.cfg.Scrub, o.Key
	}
	switch a.cfg.OnExit {
	case "stop", "terminate":
		return true, "--on-exit=" + a.cfg.OnExit
	}
	if a.desc.Platform == platform.Vast {
		return true, "a Vast.ai host"
	}
	return false, "the default"
}

// scrubSkipped logs, when scrubbing was asked for, why nothing is removed.
func (a *agent) scrubSkipped(why string) {
	if on, by := a.scrubWanted(); on {
		a.log.Warn("scrub skipped: "+why+"; everything stays on this machine", "scrub", by, "dir", a.dir)
	}
}

// scrubTarget is one path to remove: what it is (for the log) and where.
type scrubTarget struct {
	what, path string
	named      bool // a directory the user named (or the default one), which the safety rules apply to
}

// scrubTargets are the paths a scrub removes: exactly the checkpoint
// directory, each --data DST, the --code-dir (only when --code filled it),
// the trainer's log copy, the agent's socket and lock file, and, for a
// baton started with --detach, its pid file and log file.
func (a *agent) scrubTargets() []scrubTarget {
	out := []scrubTarget{{what: "checkpoint directory", path: a.dir, named: true}}
	for _, m := range a.cfg.Data {
		if p, err := filepath.Abs(m.Dst); err == nil {
			out = append(out, scrubTarget{what: "data " + m.Dst, path: p, named: true})
		}
	}
	if a.cfg.Code != "" {
		if p, err := filepath.Abs(a.cfg.CodeDir); err == nil {
			out = append(out, scrubTarget{what: "code directory", path: p, named: true})
		}
	}
	if a.logFile != nil {
		out = append(out, scrubTarget{what: "trainer log copy", path: a.logFile.Name()})
	}
	// As listen names it; it is gone already unless listen's end was missed.
	out = append(out, scrubTarget{what: "agent socket", path: filepath.Join(os.TempDir(), fmt.Sprintf("baton-%d.sock", os.Getpid()))})
	out = append(out, scrubTarget{what: "lock file", path: lockPath(a.dir)})
	// A detached baton is the process the pid file names, and its stdout is
	// the log file (cmd/baton's detach); neither is touched otherwise.
	if b, err := os.ReadFile(a.cfg.PIDFile); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		out = append(out, scrubTarget{what: "pid file", path: a.cfg.PIDFile})
		if isOurOutput(a.cfg.LogFile) {
			out = append(out, scrubTarget{what: "detach log", path: a.cfg.LogFile})
		}
	}
	return out
}

// isOurOutput reports whether path is the file this process's stdout or
// stderr writes to.
func isOurOutput(path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	for _, f := range []*os.File{os.Stdout, os.Stderr} {
		if st, err := f.Stat(); err == nil && os.SameFile(fi, st) {
			return true
		}
	}
	return false
}

// scrub removes the scrub targets if the run asks for it and the checkpoint
// directory holds nothing the store lacks. The caller has made sure that
// the final commit succeeded and that the lease was not lost.
func (a *agent) scrub() {
	on, by := a.scrubWanted()
	if !on {
		return
	}
	if safe, why := a.localWorkSafe(); !safe {
		a.scrubSkipped(why)
		return
	}
	g := newScrubGuard(a.cfg)
	var files, bytes int64
	var removed []string
	var roots []string // of removed directories, for FITRIM
	for _, t := range a.scrubTargets() {
		path := t.path
		if t.named {
			resolved, err := filepath.EvalSymlinks(path)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				a.log.Warn("scrub: not removed", "what", t.what, "path", path, "err", err)
				continue
			}
			if why := g.refuse(resolved); why != "" {
				a.log.Warn("scrub: not removed: "+why, "what", t.what, "path", path)
				continue
			}
			if resolved != path { // the named path is a link: its target goes, then the link
				if err := os.Remove(path); err == nil {
					a.log.Info("scrub: link removed", "what", t.what, "path", path, "to", resolved)
				}
				path = resolved
			}
		}
		st, err := g.remove(path, t.what == "checkpoint directory")
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		files, bytes = files+st.files, bytes+st.bytes
		attrs := []any{"what", t.what, "path", path, "files", st.files, "removed_bytes", st.bytes}
		if len(st.kept) > 0 {
			attrs = append(attrs, "kept", st.kept)
		}
		if err != nil {
			a.log.Warn("scrub: partly removed", append(attrs, "err", err)...)
		} else {
			a.log.Info("scrub: removed", attrs...)
		}
		if st.files > 0 || st.dir {
			removed = append(removed, path)
			if t.named {
				roots = append(roots, path)
			}
		}
	}
	if forks, _ := filepath.Glob(a.dir + ".baton-fork-*"); len(forks) > 0 {
		a.log.Warn("scrub: kept the forks beside the checkpoint directory: they may hold work the store lacks", "forks", forks)
	}
	a.log.Info("scrub done", "scrub", by, "paths", len(removed), "files", files, "removed_bytes", bytes)
	a.trim(g, roots)
}

// trim asks the file system of each removed directory to discard its free
// blocks (FITRIM, as fstrim(8) does), so that an SSD may erase what the
// scrub freed. It needs CAP_SYS_ADMIN and a file system and device that
// support it; a failure is logged and the run goes on.
func (a *agent) trim(g *scrubGuard, dirs []string) {
	done := map[string]bool{}
	for _, d := range dirs {
		mp := g.mountOf(d)
		if done[mp] {
			continue
		}
		done[mp] = true
		n, err := fitrim(mp)
		if err != nil {
			a.log.Info("scrub: trim not possible; freed blocks stay until the file system reuses them", "mount", mp, "err", err)
			continue
		}
		a.log.Info("scrub: trimmed", "mount", mp, "trimmed_bytes", n)
	}
}

// fitrimIoctl is FITRIM, _IOWR('X', 121, struct fstrim_range), from
// linux/fs.h; x/sys/unix does not define it.
const fitrimIoctl = 0xC0185879

// fitrim runs FITRIM on the file system mounted at dir and returns the
// bytes it trimmed, as the kernel reports them.
func fitrim(dir string) (uint64, error) {
	f, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := struct{ start, len, minlen uint64 }{0, ^uint64(0), 0}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fitrimIoctl, uintptr(unsafe.Pointer(&r))); e != 0 {
		return 0, e
	}
	return r.len, nil
}

// scrubGuard holds what a scrub must never remove.
type scrubGuard struct {
	mounts    map[string]bool // every mount point of this process's mount namespace
	forbidden map[string]string
	cwd       string
	local     []string // local paths of the store, the datasets' and the code's sources
}

func newScrubGuard(cfg config.Config) *scrubGuard {
	g := &scrubGuard{mounts: mountPoints(), forbidden: map[string]string{"/": "the root directory"}}
	if h, err := os.UserHomeDir(); err == nil {
		g.forbid(h, "the home directory")
	}
	g.forbid("/workspace", "/workspace itself")
	if wd, err := os.Getwd(); err == nil {
		g.cwd = resolve(wd)
	}
	sources := []string{cfg.Store, cfg.Code}
	for _, m := range cfg.Data {
		sources = append(sources, m.Src)
	}
	for _, s := range sources {
		if p := localPath(s); p != "" {
			g.local = append(g.local, resolve(p))
		}
	}
	return g
}

func (g *scrubGuard) forbid(path, why string) { g.forbidden[resolve(path)] = why }

// refuse says why the resolved path must not be removed, or "".
func (g *scrubGuard) refuse(path string) string {
	if why, ok := g.forbidden[path]; ok {
		return why
	}
	if g.cwd != "" && within(g.cwd, path) {
		return "it holds the working directory"
	}
	for h, why := range g.forbidden {
		if h != "/" && within(h, path) {
			return "it holds " + why
		}
	}
	for _, l := range g.local {
		if within(l, path) || within(path, l) {
			return "it is or holds a source of the run (the store, --data or --code): " + l
		}
	}
	if g.isMount(path) {
		return "it is a mount point"
	}
	return ""
}

// isMount reports whether path is a mount point: listed in mountinfo, or on
// another device than its parent.
func (g *scrubGuard) isMount(path string) bool {
	if g.mounts[path] {
		return true
	}
	var st, parent unix.Stat_t
	if unix.Lstat(path, &st) != nil || unix.Lstat(filepath.Dir(path), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// mountOf is the mount point of the file system that holds path.
func (g *scrubGuard) mountOf(path string) string {
	for p := path; ; p = filepath.Dir(p) {
		if g.mounts[p] || p == "/" || p == "." {
			return p
		}
	}
}

// scrubStats counts what remove took away.
type scrubStats struct {
	files, bytes int64
	dir          bool     // the path was a directory, and is gone
	kept         []string // what stays: other file systems, mount points, forks
}

// remove deletes path and everything under it without following a
// symbolic link (a link is removed as a link) and without crossing into
// another file system or mount point, which it keeps. In the checkpoint
// directory it also keeps baton's forks (.baton-fork-*), which may hold
// work the store lacks.
func (g *scrubGuard) remove(path string, keepForks bool) (scrubStats, error) {
	var st scrubStats
	var root unix.Stat_t
	if err := unix.Lstat(path, &root); err != nil {
		return st, &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	if root.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := os.Remove(path); err != nil {
			return st, err
		}
		st.files, st.bytes = 1, root.Size
		return st, nil
	}
	var firstErr error
	var walk func(dir string, top bool) bool // reports whether dir is empty now
	walk = func(dir string, top bool) bool {
		entries, err := os.ReadDir(dir)
		if err != nil {
			firstErr = cmpErr(firstErr, err)
			return false
		}
		empty := true
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			if top && keepForks && strings.HasPrefix(e.Name(), ".baton-fork-") {
				st.kept, empty = append(st.kept, p), false
				continue
			}
			var s unix.Stat_t
			if err := unix.Lstat(p, &s); err != nil {
				firstErr, empty = cmpErr(firstErr, err), false
				continue
			}
			if s.Mode&unix.S_IFMT == unix.S_IFDIR {
				if s.Dev != root.Dev || g.mounts[p] {
					st.kept, empty = append(st.kept, p), false
					continue
				}
				if !walk(p, false) {
					empty = false
					continue
				}
				if err := os.Remove(p); err != nil {
					firstErr, empty = cmpErr(firstErr, err), false
				}
				continue
			}
			if err := os.Remove(p); err != nil {
				firstErr, empty = cmpErr(firstErr, err), false
				continue
			}
			st.files++
			if s.Mode&unix.S_IFMT == unix.S_IFREG {
				st.bytes += s.Size
			}
		}
		return empty
	}
	if walk(path, true) {
		if err := os.Remove(path); err != nil {
			firstErr = cmpErr(firstErr, err)
		} else {
			st.dir = true
		}
	}
	return st, firstErr
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// within reports whether path is dir or lies under it (both clean and
// absolute).
func within(path, dir string) bool {
	if dir == "/" {
		return true
	}
	return path == dir || strings.HasPrefix(path, dir+string(filepath.Separator))
}

// resolve is path absolute, with its symbolic links resolved where it
// exists.
func resolve(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r
	}
	return filepath.Clean(path)
}

// localPath is the local directory a store URL or code source names
// (file:///p or a plain path), or "" for a remote one (s3://, a git URL).
func localPath(raw string) string {
	raw, _, _ = strings.Cut(strings.TrimSpace(raw), "#")
	switch {
	case raw == "":
		return ""
	case strings.HasPrefix(raw, "file://"):
		p, _, _ := strings.Cut(strings.TrimPrefix(raw, "file://"), "?")
		return p
	case strings.Contains(raw, "://") || strings.Contains(raw, "@") || strings.HasPrefix(raw, "s3:"):
		return ""
	}
	return raw
}

// mountPoints reads the mount points of this process's mount namespace
// from /proc/self/mountinfo (empty where it cannot be read).
func mountPoints() map[string]bool {
	out := map[string]bool{}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 {
			out[unescapeMount(fields[4])] = true
		}
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
