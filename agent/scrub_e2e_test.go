package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/batonrun/baton/internal/s3test"
)

// scrubHost is one machine's paths for a scrub test: the checkpoint
// directory, a dataset and the code pulled from the store, baton's working
// directory, and the sources they come from.
type scrubHost struct {
	root, work, ckpt, data, code string
	dataSrc, codeSrc             string // --data's SRC and --code
}

// newScrubHost lays a host out under a temporary directory, with the
// dataset and the code in local directories (file store).
func newScrubHost(t *testing.T) scrubHost {
	t.Helper()
	root := t.TempDir()
	h := scrubHost{root: root, work: filepath.Join(root, "work"), ckpt: filepath.Join(root, "ckpt"),
		data: filepath.Join(root, "data"), code: filepath.Join(root, "code")}
	for p, s := range map[string]string{
		filepath.Join(root, "datasrc", "train.bin"): strings.Repeat("d", 5000),
		filepath.Join(root, "codesrc", "train.sh"):  "echo trained\n",
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(h.work, 0o755); err != nil {
		t.Fatal(err)
	}
	h.dataSrc, h.codeSrc = "file://"+filepath.Join(root, "datasrc"), "file://"+filepath.Join(root, "codesrc")
	return h
}

// args are baton run's arguments for the host, before the trainer.
func (h scrubHost) args(store string, extra ...string) []string {
	return append([]string{"--store", store, "--run", "scrub", "--checkpoint-dir", h.ckpt, "--checkpoint-interval", "0",
		"--data", h.dataSrc + "=" + h.data, "--code", h.codeSrc, "--code-dir", h.code}, extra...)
}

// gone fails the test for each path that still exists.
func gone(t *testing.T, what string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s: %s is still there (%v)", what, p, err)
		}
	}
}

// there fails the test for each path that is missing.
func there(t *testing.T, what string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %s is gone: %v", what, p, err)
		}
	}
}

// lockFile is the lock baton keeps beside a checkpoint directory.
func lockFile(dir string) string {
	return filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".baton-lock")
}

// TestScrubAfterADetachedRun: a run started with --detach and --scrub on the
// file store ends, and leaves none of its directories (checkpoint, data,
// code), nor its lock, pid or log file; the store keeps the checkpoint and
// the sources stay.
func TestScrubAfterADetachedRun(t *testing.T) {
	bin := buildBaton(t)
	h := newScrubHost(t)
	store := "file://" + filepath.Join(h.root, "store")
	pid, logf := filepath.Join(h.root, "baton.pid"), filepath.Join(h.root, "baton.log")
	args := append([]string{"run"}, h.args(store, "--scrub", "--detach", "--pid-file", pid, "--log-file", logf)...)
	args = append(args, "--", "sh", "-c", `echo model > "$BATON_CHECKPOINT_DIR/model.bin" && sh train.sh`)
	cmd := exec.Command(bin, args...)
	cmd.Env, cmd.Dir = baseEnv(), h.work
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("baton run --detach: %v\n%s", err, out)
	}
	var last []byte
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, errPid := os.Stat(pid)
		if os.IsNotExist(errPid) {
			break
		}
		if b, err := os.ReadFile(logf); err == nil {
			last = b
		}
		if time.Now().After(deadline) {
			t.Fatalf("the detached run did not scrub its pid file within 2 minutes; its log:\n%s", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The pid file goes before the log file: give the rest a moment.
	for range 50 {
		if _, err := os.Stat(logf); os.IsNotExist(err) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	gone(t, "after a scrub", h.ckpt, h.data, h.code, lockFile(h.ckpt), pid, logf)
	there(t, "after a scrub", filepath.Join(h.root, "datasrc", "train.bin"), filepath.Join(h.root, "codesrc", "train.sh"), h.work)
	if list := summaries(t, bin, baseEnv(), store, "scrub"); len(list) == 0 {
		t.Fatalf("nothing committed before the scrub; log:\n%s", last)
	}
}

// TestScrubOnVersitygw: on a real S3 server, a finished run with --scrub
// removes its checkpoint directory, its dataset and its code, and says what
// it removed with its bytes; a second run restores from the store.
func TestScrubOnVersitygw(t *testing.T) {
	srv := s3test.Start(t, s3test.Versitygw)
	bucket := srv.NewBucket(t)
	for key, body := range map[string]string{"data/train.bin": strings.Repeat("d", 5000), "code/train.sh": "echo trained\n"} {
		if _, err := srv.Client().PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
			Body: bytes.NewReader([]byte(body))}); err != nil {
			t.Fatal(err)
		}
	}
	bin := buildBaton(t)
	h := newScrubHost(t)
	q := "?endpoint=" + srv.Endpoint
	h.dataSrc, h.codeSrc = "s3://"+bucket+"/data"+q, "s3://"+bucket+"/code"+q
	store := "s3://" + bucket + "/p" + q
	env := baseEnv("AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+srv.SecretKey, "AWS_REGION="+srv.Region)
	trainer := []string{"--", "sh", "-c", `test -f "$BATON_CHECKPOINT_DIR/model.bin" && echo resumed; echo model > "$BATON_CHECKPOINT_DIR/model.bin" && sh train.sh`}
	run := func(extra ...string) (int, []string, string) {
		t.Helper()
		s := startRunIn(t, bin, h.work, env, append(h.args(store, extra...), trainer...)...)
		code, lines := s.wait(t)
		return code, lines, s.stderr.String()
	}
	code, lines, stderr := run("--scrub")
	if code != 0 || !strings.Contains(strings.Join(lines, "\n"), "trained") {
		t.Fatalf("exit %d, lines %q:\n%s", code, lines, stderr)
	}
	gone(t, "after a scrub", h.ckpt, h.data, h.code, lockFile(h.ckpt))
	for _, want := range []string{`"msg":"scrub: removed","what":"checkpoint directory"`, `"msg":"scrub: removed","what":"data `,
		`"msg":"scrub: removed","what":"code directory"`, `"msg":"scrub done","scrub":"--scrub"`, `"removed_bytes":5000`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("no %s in the log:\n%s", want, stderr)
		}
	}
	// Nothing of the run is lost: the next run (without a scrub) resumes.
	code, lines, stderr = run("--scrub=false")
	if code != 0 || len(lines) == 0 || lines[0] != "resumed" {
		t.Fatalf("the run after a scrub: exit %d, lines %q, want it resumed:\n%s", code, lines, stderr)
	}
	there(t, "with --scrub=false", filepath.Join(h.ckpt, "model.bin"), filepath.Join(h.data, "train.bin"), filepath.Join(h.code, "train.sh"))
	if strings.Contains(stderr, `"msg":"scrub`) {
		t.Errorf("--scrub=false logged a scrub:\n%s", stderr)
	}
}

// TestNoScrubAfterAFailedFinalCommit: the final commit fails (the file
// store's chunks directory turned into a file): the run exits 74 and keeps
// every directory, --scrub or not, and says why.
func TestNoScrubAfterAFailedFinalCommit(t *testing.T) {
	bin := buildBaton(t)
	h := newScrubHost(t)
	storeDir := filepath.Join(h.root, "store")
	script := fmt.Sprintf(`echo saved > "$BATON_CHECKPOINT_DIR/model.bin" && rm -rf %q/chunks && echo x > %q/chunks && echo saved`, storeDir, storeDir)
	s := startRunIn(t, bin, h.work, baseEnv(), append(h.args("file://"+storeDir, "--scrub", "--on-exit", "stop"), "--", "sh", "-c", script)...)
	code, _ := s.wait(t)
	stderr := s.stderr.String()
	if code != 74 {
		t.Fatalf("exit %d, want 74:\n%s", code, stderr)
	}
	there(t, "after a failed final commit", filepath.Join(h.ckpt, "model.bin"), filepath.Join(h.data, "train.bin"), filepath.Join(h.code, "train.sh"))
	if !strings.Contains(stderr, "scrub skipped: the final commit failed") || strings.Contains(stderr, "scrub: removed") {
		t.Fatalf("want 'scrub skipped: the final commit failed' and nothing removed:\n%s", stderr)
	}
	// Nor is the run marked done (a baton watch would stop watching it
	// while its last work is only on this disk).
	if done, _ := filepath.Glob(filepath.Join(storeDir, "runs", "*", "done.json")); len(done) != 0 {
		t.Errorf("a run whose final commit failed is marked done: %v", done)
	}
}

// startRunIn is startRun with baton's working directory dir and
// environment env: bin runs through a script that changes to dir first.
func startRunIn(t *testing.T, bin, dir string, env []string, args ...string) *started {
	t.Helper()
	wrapper := filepath.Join(t.TempDir(), "baton-in-dir")
	script := fmt.Sprintf("#!/bin/sh\ncd %q && exec %q \"$@\"\n", dir, bin)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return startRun(t, wrapper, host{env: env}, args...)
}
