package agent_test

// The end-to-end test of issue 16: baton watch keeps a run alive with the
// local provider. It starts watch on a file store, SIGKILLs the first host
// (baton run and its trainer) after a commit, and checks that watch
// launches a replacement once the lease lapsed, that the replacement
// resumes from the last commit and finishes, that the run's done record is
// written, and that watch exits 0.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/syncbuf"
)

// waitFor polls cond every 100 ms until it holds, failing the test with
// what after deadline.
func waitFor(t *testing.T, deadline time.Duration, what string, cond func() bool, more func() string) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("no %s within %s\n%s", what, deadline, more())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestWatchReplacesAKilledHost(t *testing.T) {
	bin, trainer := buildBaton(t), trainerPath(t)
	root := t.TempDir()
	store := filepath.Join(root, "store")
	hosts := filepath.Join(root, "hosts")
	spec := fmt.Sprintf(`store: file://%s
run_id: watched
checkpoint_interval: 0
lease_duration: 10s
telemetry_upload: 10s
command: [python3, %q, --steps, "60", --step-seconds, "0.2", --save-every, "5", --notify, --model-mib, "0.1"]
launch:
  provider: local
  local_dir: %s
  boot_timeout: 30s
  watch_interval: 1s
`, store, trainer, hosts)
	if err := os.WriteFile(filepath.Join(root, "run.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	watch := exec.Command(bin, "watch", "--config", "run.yaml", "--log-format", "text")
	watch.Dir = root
	watch.Env = baseEnv()
	var out syncbuf.Buffer
	watch.Stdout, watch.Stderr = &out, &out
	start := time.Now()
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	// exited is closed once watch is reaped, with its error in waitErr: the
	// cleanup waits for it again after the test read it.
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = watch.Wait(); close(exited) }()
	t.Cleanup(func() {
		killTree(watch.Process.Pid)
		<-exited
		for _, label := range []string{"baton-watched-0-1", "baton-watched-1-1", "baton-watched-1-2"} {
			if b, err := os.ReadFile(filepath.Join(hosts, label, "baton.pid")); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					killTree(pid)
				}
			}
		}
	})
	logOf := func(label string) string {
		b, _ := os.ReadFile(filepath.Join(hosts, label, "baton.log"))
		return string(b)
	}
	latest := func() checkpoint.Latest {
		var l checkpoint.Latest
		b, _ := os.ReadFile(filepath.Join(store, "runs", "watched", "latest.json"))
		json.Unmarshal(b, &l)
		return l
	}
	dump := func() string {
		return "watch:\n" + out.String() + "\nfirst host:\n" + logOf("baton-watched-0-1") + "\nreplacement:\n" + logOf("baton-watched-1-1")
	}

	// The first host commits, then dies without a word.
	waitFor(t, 60*time.Second, "first commit", func() bool { return latest().Seq >= 1 }, dump)
	b, err := os.ReadFile(filepath.Join(hosts, "baton-watched-0-1", "baton.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	killTree(pid) // baton run and its trainer, SIGKILL
	killed := time.Now()
	var lease checkpoint.LeaseRecord
	if b, err := os.ReadFile(filepath.Join(store, "runs", "watched", "lease.json")); err != nil || json.Unmarshal(b, &lease) != nil {
		t.Fatalf("lease.json: %v", err)
	}
	committed := latest().Seq
	steps := regexp.MustCompile(`(?m)^step=(\d+) `).FindAllStringSubmatch(logOf("baton-watched-0-1"), -1)
	t.Logf("%5.1fs first host SIGKILLed at trainer step %s, checkpoint %d committed", killed.Sub(start).Seconds(), steps[len(steps)-1][1], committed)

	// watch launches a replacement only once the lease lapsed.
	claim := filepath.Join(store, "runs", "watched", "launches", "1-1.json")
	waitFor(t, 60*time.Second, "replacement launch", func() bool { _, err := os.Stat(claim); return err == nil }, dump)
	launched := time.Now()
	var c struct {
		ClaimedAt time.Time `json:"claimed_at"`
		Provider  string    `json:"provider"`
	}
	if b, err := os.ReadFile(claim); err != nil || json.Unmarshal(b, &c) != nil {
		t.Fatalf("claim: %v", err)
	}
	if c.ClaimedAt.Before(lease.ExpiresAt) {
		t.Errorf("replacement claimed at %s, before the lease lapsed at %s", c.ClaimedAt, lease.ExpiresAt)
	}
	t.Logf("%5.1fs replacement baton-watched-1-1 launched (%.1fs after the kill; the lease lapsed %.1fs after it)",
		launched.Sub(start).Seconds(), launched.Sub(killed).Seconds(), lease.ExpiresAt.Sub(killed).Seconds())

	// It resumes from the last commit.
	resumed := regexp.MustCompile(`(?m)^resumed from step=(\d+)$`)
	waitFor(t, 60*time.Second, "resume on the replacement", func() bool { return resumed.MatchString(logOf("baton-watched-1-1")) }, dump)
	step, _ := strconv.Atoi(resumed.FindStringSubmatch(logOf("baton-watched-1-1"))[1])
	if step <= 0 {
		t.Fatalf("the replacement resumed from step %d, want the committed step", step)
	}
	t.Logf("%5.1fs replacement resumed from step %d", time.Since(start).Seconds(), step)

	// The run finishes and watch exits 0.
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("baton watch: %v\n%s", waitErr, dump())
		}
	case <-time.After(120 * time.Second):
		t.Fatalf("baton watch did not exit\n%s", dump())
	}
	t.Logf("%5.1fs run done, baton watch exited 0", time.Since(start).Seconds())
	if !strings.Contains(logOf("baton-watched-1-1"), "done step=60") {
		t.Errorf("the replacement did not finish:\n%s", logOf("baton-watched-1-1"))
	}
	if _, err := os.Stat(filepath.Join(store, "runs", "watched", "done.json")); err != nil {
		t.Errorf("done record: %v", err)
	}
	if _, err := os.Stat(filepath.Join(hosts, "baton-watched-1-2")); err == nil {
		t.Errorf("a second replacement was launched:\n%s", out.String())
	}

	// baton status tells the story from the store alone.
	st, err := exec.Command(bin, "status", "--store", "file://"+store, "--run", "watched").CombinedOutput()
	if err != nil {
		t.Fatalf("baton status: %v\n%s", err, st)
	}
	for _, want := range []string{"run watched: done", "baton-watched-0-1", "baton-watched-1-1", "launches:    2"} {
		if !strings.Contains(string(st), want) {
			t.Errorf("baton status lacks %q:\n%s", want, st)
		}
	}
	t.Logf("baton status:\n%s", st)
}
