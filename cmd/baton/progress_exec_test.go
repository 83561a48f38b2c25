package main

// The tests of what the real baton shows while it moves files, on a
// pseudo-terminal and in baton run's log.

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal as posix_openpt, unlockpt and ptsname
// do: the master /dev/ptmx, unlocked (TIOCSPTLCK), and the slave its number
// names (TIOCGPTN).
func openPTY(t *testing.T) (master, slave *os.File) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	if slave, err = os.OpenFile("/dev/pts/"+strconv.FormatUint(uint64(n), 10), os.O_RDWR|unix.O_NOCTTY, 0); err != nil {
		t.Fatal(err)
	}
	return master, slave
}

// TestPullShowsABarOnATerminal runs the real baton pull with its stderr on
// a pseudo-terminal, through a proxy that makes it last two seconds: the
// first line names what moves with its totals, a bar redrawn in place has
// the files, bytes, rate and ETA (never 0s), and the last line the totals.
func TestPullShowsABarOnATerminal(t *testing.T) {
	url, environ := slowStore(t)
	dir := t.TempDir()
	master, slave := openPTY(t)
	cmd := exec.Command(batonBinary(t), "pull", "--workers=2", url, dir)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range environ {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close() // the child holds it; the master reads EIO once it exits
	var term bytes.Buffer
	read := make(chan struct{})
	go func() { io.Copy(&term, master); close(read) }()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("pull: %v\n%s", err, &term)
	}
	<-read
	// The terminal turns each "\n" into "\r\n".
	got := strings.ReplaceAll(term.String(), "\r\n", "\n")
	what := "pulling " + strings.Split(url, "?")[0] + " into " + dir
	if !strings.HasPrefix(got, what+": 4 files, 4.0 MiB\n") {
		t.Errorf("the terminal shows %q, want first %q", got, what+": 4 files, 4.0 MiB")
	}
	bars := strings.Split(strings.TrimSuffix(got, "\n"), "\r")
	if len(bars) < 3 {
		t.Fatalf("no bar redrawn in place: %q", got)
	}
	for _, bar := range bars[1 : len(bars)-1] {
		if !strings.HasPrefix(bar, "[") || !strings.Contains(bar, "/4 files") || !strings.Contains(bar, "/4.0 MiB") ||
			!strings.Contains(bar, "/s  ETA ") || !strings.HasSuffix(bar, "\x1b[K") || strings.Contains(bar, "ETA 0s") {
			t.Errorf("bar %q, want [===>  ] N%%  F/4 files  B/4.0 MiB  RATE/s  ETA T, cleared to the end of the line", bar)
		}
	}
	if last := bars[len(bars)-1]; !strings.HasPrefix(last, "\x1b[K"+what+": done, 4 files, 4.0 MiB in ") {
		t.Errorf("last line %q, want the totals", last)
	}
	if !strings.HasPrefix(stdout.String(), "pulled 4 files (4.0 MiB)") {
		t.Errorf("stdout %q, want the summary", &stdout)
	}
}

// TestRunLogsProgress runs the real baton run twice on a store behind
// the slowed proxy: the first pulls its code (4 MiB) and commits what the trainer
// wrote (4 MiB), logging JSON; the second, on a fresh checkpoint directory,
// restores that checkpoint, logging text. Each transfer logs a first line
// with its totals and a last one with what moved.
func TestRunLogsProgress(t *testing.T) {
	url, environ := slowStore(t)
	store := strings.Replace(url, "/data?", "/ckpt?", 1)
	run := func(format, ckpt string, trainer ...string) string {
		t.Helper()
		args := []string{"run", "--store", store, "--run", "prog", "--checkpoint-dir", ckpt, "--log-format", format,
			"--code", url, "--code-dir", t.TempDir() + "/code", "--workers", "2",
			"--metrics-addr", "", "--telemetry-interval", "0", "--gpu-check=false", "--"}
		cmd := exec.Command(batonBinary(t), append(args, trainer...)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		for k, v := range environ {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("baton run: %v\n%s", err, out)
		}
		return string(out)
	}
	ckpt := t.TempDir() + "/ckpt"
	logs := run("json", ckpt, "sh", "-c", `head -c 4194304 /dev/urandom > "$BATON_CHECKPOINT_DIR/model.bin"`)
	bucketURL := strings.Split(url, "?")[0]
	for _, want := range []string{
		`"msg":"pulling ` + bucketURL + ` into `, `,"files_total":4,"total_bytes":4194304}`,
		`"msg":"committing ` + ckpt + ` as the next checkpoint of run prog","files_total":1,"total_bytes":4194304}`,
		`"msg":"committing ` + ckpt + ` as the next checkpoint of run prog: done","files_done":1,"files_total":1,"done_bytes":4194304,"total_bytes":4194304,`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("baton run's JSON log lacks %s:\n%s", want, logs)
		}
	}
	other := t.TempDir() + "/ckpt"
	logs = run("text", other, "true")
	for _, want := range []string{
		`msg="restoring checkpoint 1 of run prog into ` + other + `" files_total=1 total_bytes="4.0 MiB"`,
		`msg="restoring checkpoint 1 of run prog into ` + other + `: done" files_done=1 files_total=1 done_bytes="4.0 MiB" total_bytes="4.0 MiB" elapsed_s=`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("baton run's text log lacks %s:\n%s", want, logs)
		}
	}
}
