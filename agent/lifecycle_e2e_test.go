package agent_test

// End-to-end tests of the lifecycles of issue 11, with the real binary and
// the example trainer: which copy wins at start (local directory or store),
// one trainer per run, a vanished holder, stops during set-up, empty
// checkpoints, a failed final commit, a damaged newest checkpoint, and
// BATON_RESUME_FROM across restarts. They run on the file store; the
// lifecycle table runs on versitygw too.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/s3test"
)

// lifecycle is one store and run shared by simulated hosts.
type lifecycle struct {
	t            *testing.T
	bin, trainer string
	store        string
	env          []string // what every host's environment has (credentials)
}

func newLifecycle(t *testing.T, s3 bool) *lifecycle {
	l := &lifecycle{t: t, bin: buildBaton(t), trainer: trainerPath(t), store: "file://" + filepath.Join(t.TempDir(), "store")}
	if s3 {
		srv := s3test.Start(t, s3test.Versitygw)
		l.store = "s3://" + srv.NewBucket(t) + "/p?endpoint=" + srv.Endpoint
		l.env = []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey, "AWS_REGION=" + srv.Region}
	}
	return l
}

// host returns a host with its own checkpoint directory and identity.
func (l *lifecycle) host(identity ...string) host {
	return host{dir: filepath.Join(l.t.TempDir(), "ckpt"), env: baseEnv(append(append([]string(nil), l.env...), identity...)...)}
}

// args are baton run's arguments for h, training to step steps. The table
// is about what the local directory holds from one run to the next, which a
// scrub (on by default on Vast.ai) would remove on purpose: --scrub=false.
func (l *lifecycle) args(h host, steps int, extra ...string) []string {
	args := append([]string{"--store", l.store, "--run", "life", "--checkpoint-dir", h.dir, "--checkpoint-interval", "0", "--scrub=false"}, extra...)
	return append(args, "--", "python3", l.trainer, "--steps", fmt.Sprint(steps), "--step-seconds", "0.001", "--save-every", "5", "--model-mib", "0.1")
}

// train runs baton on h to step steps and returns the trainer's first line
// ("starting fresh" or "resumed from step=N") and baton's stderr.
func (l *lifecycle) train(h host, steps int, extra ...string) (string, string) {
	l.t.Helper()
	code, lines, stderr := runToEnd(l.t, l.bin, h, l.args(h, steps, extra...)...)
	if code != 0 || len(lines) == 0 {
		l.t.Fatalf("baton run to step %d: exit %d\n%s", steps, code, stderr)
	}
	if _, ok := hasLine(lines, fmt.Sprintf("done step=%d", steps)); !ok {
		l.t.Fatalf("the trainer did not reach step %d:\n%s\n%s", steps, strings.Join(lines, "\n"), stderr)
	}
	return lines[0], stderr
}

// trainAlone runs the trainer without baton on dir, as a trainer that saved
// after the last commit and then lost its host would have.
func (l *lifecycle) trainAlone(dir string, steps int) {
	l.t.Helper()
	cmd := exec.Command("python3", l.trainer, "--checkpoint-dir", dir, "--steps", fmt.Sprint(steps), "--step-seconds", "0.001",
		"--save-every", "5", "--model-mib", "0.1")
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("trainer alone: %v\n%s", err, out)
	}
}

// TestLifecycleTable walks the rows of docs/run.md's table "Local directory
// or store", each as the hosts of a real platform would meet it.
func TestLifecycleTable(t *testing.T) {
	for _, s3 := range []bool{false, true} {
		name := "file"
		if s3 {
			name = "versitygw"
		}
		t.Run(name, func(t *testing.T) {
			l := newLifecycle(t, s3)

			// Empty directory, empty store: fresh. Vast instance 1 ends at
			// step 5.
			vast1 := l.host("VAST_CONTAINERLABEL=C.1", "CONTAINER_ID=1")
			if first, _ := l.train(vast1, 5); first != "starting fresh" {
				t.Fatalf("first run: %q", first)
			}
			// Empty directory: restore. Vast instance 2 trains to 20.
			vast2 := l.host("VAST_CONTAINERLABEL=C.2", "CONTAINER_ID=2")
			if first, _ := l.train(vast2, 20); first != "resumed from step=5" {
				t.Fatalf("instance 2 resumed as %q, want from step 5", first)
			}
			// Vast wake-up: instance 1 comes back with its old disk (a
			// record of checkpoint 1, unchanged): the store's newer
			// checkpoint wins, not the old directory.
			if first, stderr := l.train(vast1, 25); first != "resumed from step=20" {
				t.Fatalf("instance 1 woke up and resumed as %q, want from step 20:\n%s", first, stderr)
			}

			// Same pod restarted after it saved past its last commit: the
			// local save is kept and committed before the trainer starts.
			l.trainAlone(vast1.dir, 30)
			first, stderr := l.train(vast1, 35)
			if first != "resumed from step=30" || !strings.Contains(stderr, "commit it first") {
				t.Fatalf("restart with a newer local save resumed as %q, want from step 30 after a commit:\n%s", first, stderr)
			}
			// A new container on the same (bind-mounted) directory with a
			// newer local save: the same, whatever the platform says.
			l.trainAlone(vast1.dir, 40)
			docker := host{dir: vast1.dir, env: baseEnv(l.env...)}
			if first, _ := l.train(docker, 45); first != "resumed from step=40" {
				t.Fatalf("a new container on a directory with a newer save resumed as %q, want from step 40", first)
			}

			// Two pods on one RunPod server (one RUNPOD_POD_HOSTNAME): pod
			// C's directory holds an old step, with no record (an older
			// baton). Pod A trained on: pod C sets its directory aside and
			// resumes from A's checkpoint.
			podA := l.host("RUNPOD_POD_ID=a", "RUNPOD_POD_HOSTNAME=server-7")
			if first, _ := l.train(podA, 50); first != "resumed from step=45" {
				t.Fatalf("pod A resumed as %q", first)
			}
			podC := l.host("RUNPOD_POD_ID=c", "RUNPOD_POD_HOSTNAME=server-7")
			l.trainAlone(podC.dir, 10)
			first, stderr = l.train(podC, 55)
			if first != "resumed from step=50" || !strings.Contains(stderr, "FORK") {
				t.Fatalf("pod C resumed as %q, want from A's step 50 with its own work set aside:\n%s", first, stderr)
			}
			forks, _ := filepath.Glob(podC.dir + ".baton-fork-0-*")
			if len(forks) != 1 {
				t.Fatalf("pod C's work was not set aside beside its directory: %v", forks)
			}
			if _, err := os.Stat(filepath.Join(forks[0], "checkpoint-10", "state.json")); err != nil {
				t.Fatalf("the fork lacks pod C's step 10: %v", err)
			}

			// Both moved: pod A (record of an older checkpoint) saved on
			// its own while pod C committed: a fork, set aside, and A
			// resumes from C's.
			l.trainAlone(podA.dir, 52)
			first, stderr = l.train(podA, 60)
			if first != "resumed from step=55" || !strings.Contains(stderr, "FORK") {
				t.Fatalf("pod A after a fork resumed as %q, want from step 55:\n%s", first, stderr)
			}

			// Restore, then a crash before the trainer saved anything, then
			// a restart: the restored directory is kept, not fetched again.
			podD := l.host("RUNPOD_POD_ID=d")
			code, _, stderr := runToEnd(t, l.bin, podD, "--store", l.store, "--run", "life", "--checkpoint-dir", podD.dir,
				"--checkpoint-interval", "0", "--restarts", "0", "--", "sh", "-c", "kill -9 $PPID")
			if code != -1 {
				t.Fatalf("baton was to be killed by its trainer; exit %d\n%s", code, stderr)
			}
			first, stderr = l.train(podD, 65)
			if first != "resumed from step=60" || !strings.Contains(stderr, "keep the local directory") || strings.Contains(stderr, "checkpoint restored") {
				t.Fatalf("restart after restore and crash resumed as %q, want from step 60 without a second restore:\n%s", first, stderr)
			}
		})
	}
}

// TestOneTrainerPerRun: a second baton run of the same checkpoint directory
// on the same machine (two shells in one pod) is refused while the first
// runs; after the first is SIGKILLed, a new one takes the run over at once,
// without waiting for the lease to expire.
func TestOneTrainerPerRun(t *testing.T) {
	l := newLifecycle(t, false)
	pod := l.host("RUNPOD_POD_ID=same")
	args := func(steps int) []string {
		return append([]string{"--lease-duration", "1m"}, l.args(pod, steps)...)
	}
	first := startRun(t, l.bin, pod, args(100000)...)
	first.waitFor(t, "the first trainer's start", func(s string) bool { return s == "starting fresh" })
	code, lines, stderr := runToEnd(t, l.bin, pod, args(10)...)
	if code != 75 || len(lines) != 0 || !strings.Contains(stderr, "another baton run on this machine") {
		t.Fatalf("second baton run: exit %d, %d trainer lines, stderr:\n%s", code, len(lines), stderr)
	}
	killTree(first.cmd.Process.Pid)
	first.wait(t)
	code, _, stderr = runToEnd(t, l.bin, pod, args(10)...)
	if code != 0 || strings.Contains(stderr, "held by another host") {
		t.Fatalf("after the first was killed: exit %d, stderr:\n%s", code, stderr)
	}
}

// TestVanishedHolder: a host that vanished (SIGKILL, no release) holds the
// run until its lease expires; a new host waits for that and takes over,
// instead of exiting 75 again and again; with --lease-wait 0 it exits 75 at
// once.
func TestVanishedHolder(t *testing.T) {
	l := newLifecycle(t, false)
	a := l.host("RUNPOD_POD_ID=a")
	sa := startRun(t, l.bin, a, append([]string{"--lease-duration", "10s"}, l.args(a, 100000)...)...)
	sa.waitFor(t, "A's start", func(s string) bool { return s == "starting fresh" })
	killTree(sa.cmd.Process.Pid)
	sa.wait(t)

	b := l.host("RUNPOD_POD_ID=b")
	code, _, stderr := runToEnd(t, l.bin, b, append([]string{"--lease-wait", "0"}, l.args(b, 10)...)...)
	if code != 75 {
		t.Fatalf("--lease-wait 0: exit %d, want 75:\n%s", code, stderr)
	}
	first, stderr := l.train(b, 10)
	if first != "starting fresh" || !strings.Contains(stderr, "waiting for its lease to end") {
		t.Fatalf("B resumed as %q, want it to wait for A's lease and start:\n%s", first, stderr)
	}
}

// TestStopDuringSetup: SIGTERM or SIGINT while baton waits for the lease
// (any phase before the trainer) ends it at once with 143 or 130, no
// trainer started, nothing committed.
func TestStopDuringSetup(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			l := newLifecycle(t, false)
			a := l.host("RUNPOD_POD_ID=a")
			sa := startRun(t, l.bin, a, l.args(a, 100000)...)
			sa.waitFor(t, "A's start", func(s string) bool { return s == "starting fresh" })

			b := l.host("RUNPOD_POD_ID=b")
			sb := startRun(t, l.bin, b, append([]string{"--lease-wait", "10m"}, l.args(b, 10)...)...)
			waitStderr(t, sb, "waiting for its lease to end")
			sent := time.Now()
			sb.cmd.Process.Signal(sig)
			code, lines := sb.wait(t)
			if want := 128 + int(sig); code != want || len(lines) != 0 {
				t.Fatalf("exit %d with %d trainer lines, want %d and none:\n%s", code, len(lines), want, sb.stderr)
			}
			if d := time.Since(sent); d > 2*time.Second {
				t.Errorf("took %s to stop, want within 2 s", d)
			}
			if entries, _ := os.ReadDir(b.dir); len(entries) != 0 {
				t.Errorf("B's checkpoint directory holds %d entries", len(entries))
			}
		})
	}
}

// waitStderr waits until baton's stderr holds want, or it ends.
func waitStderr(t *testing.T, s *started, want string) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(s.stderr.String(), want) {
		select {
		case <-s.done:
			t.Fatalf("baton ended before logging %q:\n%s", want, s.stderr)
		case <-tick.C:
		}
	}
}

// TestNothingToCommit: a trainer that writes nothing into the checkpoint
// directory publishes no checkpoint, and the next start is not told to
// resume.
func TestNothingToCommit(t *testing.T) {
	l := newLifecycle(t, false)
	h := l.host()
	for range 2 {
		code, lines, stderr := runToEnd(t, l.bin, h, "--store", l.store, "--run", "life", "--checkpoint-dir", h.dir,
			"--checkpoint-interval", "0", "--", "sh", "-c", `echo "resume=$BATON_RESUME from=$BATON_RESUME_FROM"`)
		if code != 0 || len(lines) != 1 || lines[0] != "resume=0 from=0" {
			t.Fatalf("exit %d, lines %q\n%s", code, lines, stderr)
		}
	}
	if list := summaries(t, l.bin, baseEnv(), l.store, "life"); len(list) != 0 {
		t.Fatalf("an empty directory was published: %+v", list)
	}
}

// TestFailedFinalCommit: when the final commit cannot be made (the store
// refuses it for good), baton exits 74 and runs no exit action.
func TestFailedFinalCommit(t *testing.T) {
	l := newLifecycle(t, false)
	h := l.host()
	storeDir := strings.TrimPrefix(l.store, "file://")
	// The trainer saves, then the store's chunks directory turns into a
	// file: every chunk upload fails, and not for a moment.
	script := fmt.Sprintf(`echo saved > "$BATON_CHECKPOINT_DIR/model.bin" && rm -rf %q/chunks && echo x > %q/chunks && echo saved`, storeDir, storeDir)
	code, lines, stderr := runToEnd(t, l.bin, h, "--store", l.store, "--run", "life", "--checkpoint-dir", h.dir,
		"--checkpoint-interval", "0", "--on-exit", "stop", "--", "sh", "-c", script)
	if code != 74 || len(lines) != 1 {
		t.Fatalf("exit %d, lines %q, want 74:\n%s", code, lines, stderr)
	}
	if !strings.Contains(stderr, "no exit action") || strings.Contains(stderr, "exit action done") || strings.Contains(stderr, "exit action failed") {
		t.Fatalf("an exit action ran, or was not said to be skipped:\n%s", stderr)
	}
}

// TestFallBackToAnOlderCheckpoint: the newest checkpoint's chunk is gone
// from the store; a new host resumes from the one before, and says so.
func TestFallBackToAnOlderCheckpoint(t *testing.T) {
	l := newLifecycle(t, false)
	a := l.host()
	l.train(a, 5)
	l.train(a, 10)
	// Delete every chunk the newest checkpoint has and the first lacks.
	storeDir := strings.TrimPrefix(l.store, "file://")
	old := chunksOf(t, l, 1)
	for c := range chunksOf(t, l, 2) {
		if !old[c] {
			if err := os.Remove(filepath.Join(storeDir, "chunks", c[:2], c)); err != nil {
				t.Fatal(err)
			}
		}
	}
	b := l.host()
	first, stderr := l.train(b, 15)
	if first != "resumed from step=5" || !strings.Contains(stderr, "restored an older checkpoint") {
		t.Fatalf("resumed as %q, want from step 5 (checkpoint 1):\n%s", first, stderr)
	}
}

// chunksOf returns the chunk hashes of checkpoint seq.
func chunksOf(t *testing.T, l *lifecycle, seq int) map[string]bool {
	t.Helper()
	cmd := exec.Command(l.bin, "checkpoint", "show", "--json", "--store", l.store, "--run", "life", fmt.Sprint(seq))
	cmd.Env = baseEnv(l.env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("show %d: %v", seq, err)
	}
	var m checkpoint.Manifest
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	for _, f := range m.Files {
		for _, c := range f.Chunks {
			set[c] = true
		}
	}
	return set
}

// TestResumeFromFollowsCommits: a restart resumes from the commit made just
// before it, and says so in BATON_RESUME_FROM.
func TestResumeFromFollowsCommits(t *testing.T) {
	l := newLifecycle(t, false)
	h := l.host()
	script := `echo "attempt=$BATON_ATTEMPT resume=$BATON_RESUME from=$BATON_RESUME_FROM"; echo $BATON_ATTEMPT > "$BATON_CHECKPOINT_DIR/a"; [ "$BATON_ATTEMPT" = 1 ] || exit 3`
	code, lines, stderr := runToEnd(t, l.bin, h, "--store", l.store, "--run", "life", "--checkpoint-dir", h.dir,
		"--checkpoint-interval", "0", "--restarts", "1", "--restart-backoff", "0s", "--", "sh", "-c", script)
	want := []string{"attempt=0 resume=0 from=0", "attempt=1 resume=1 from=1"}
	if code != 0 || strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("exit %d, lines %q, want %q:\n%s", code, lines, want, stderr)
	}
}
