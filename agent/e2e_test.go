package agent_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/buildflags"
	"github.com/batonrun/baton/internal/s3test"
	"github.com/batonrun/baton/internal/syncbuf"
	"github.com/batonrun/baton/internal/testenv"
)

// The end-to-end tests run the real baton binary on the example trainer
// (examples/trainer.py), as a user would.

// buildBaton compiles cmd/baton into a temporary directory.
func buildBaton(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "baton")
	if err := buildflags.Build(bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

func trainerPath(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "examples", "trainer.py")
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// host is one simulated machine: an environment and a checkpoint directory.
type host struct {
	env []string
	dir string
}

// baseEnv is the test process's environment without anything that names a
// platform, plus extra.
func baseEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "RUNPOD_") || strings.HasPrefix(name, "VAST_") || strings.HasPrefix(name, "BATON_") ||
			name == "CONTAINER_ID" || name == "CONTAINER_API_KEY" || name == "KUBERNETES_SERVICE_HOST" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// started is a running `baton run`.
type started struct {
	cmd    *exec.Cmd
	lines  chan string // the trainer's stdout, line by line
	stderr *syncbuf.Buffer
	done   chan struct{}
}

func startRun(t *testing.T, bin string, h host, args ...string) *started {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"run"}, args...)...)
	cmd.Env = h.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &started{cmd: cmd, lines: make(chan string, 10000), stderr: &syncbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		killTree(cmd.Process.Pid)
		<-s.done
	})
	go func() {
		cmd.Wait()
		close(s.done)
	}()
	return s
}

// waitFor reads trainer lines until one satisfies match, and returns it.
func (s *started) waitFor(t *testing.T, what string, match func(string) bool) string {
	t.Helper()
	for line := range s.lines {
		if match(line) {
			return line
		}
	}
	t.Fatalf("baton run ended before %s; stderr:\n%s", what, s.stderr)
	return ""
}

// wait returns the exit status and every remaining trainer line.
func (s *started) wait(t *testing.T) (int, []string) {
	t.Helper()
	var rest []string
	for line := range s.lines {
		rest = append(rest, line)
	}
	<-s.done
	return s.cmd.ProcessState.ExitCode(), rest
}

func runToEnd(t *testing.T, bin string, h host, args ...string) (int, []string, string) {
	t.Helper()
	s := startRun(t, bin, h, args...)
	code, lines := s.wait(t)
	return code, lines, s.stderr.String()
}

func hasLine(lines []string, prefix string) (string, bool) {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return l, true
		}
	}
	return "", false
}

func summaries(t *testing.T, bin string, env []string, store, run string) []checkpoint.Summary {
	t.Helper()
	cmd := exec.Command(bin, "checkpoint", "ls", "--json", "--store", store, "--run", run)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("checkpoint ls: %v", err)
	}
	var list []checkpoint.Summary
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("checkpoint ls --json: %v\n%s", err, out)
	}
	return list
}

// TestMigrationAcrossPlatforms: a run on a RunPod-like host commits at least
// twice to a real S3 server, baton and the trainer are SIGKILLed, and the
// same command on a Vast-like host resumes from the last committed step.
// Secrets planted in the environment never appear in any output.
func TestMigrationAcrossPlatforms(t *testing.T) {
	bin, trainer := buildBaton(t), trainerPath(t)
	srv := s3test.Start(t, s3test.Versitygw)
	bucket := srv.NewBucket(t)
	store := "s3://" + bucket + "/runs?endpoint=" + srv.Endpoint
	const runpodKey, vastKey = "rpa_SECRETrunpodkey0123456789", "vast-SECRET-container-key-987"
	common := []string{
		"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey, "AWS_REGION=" + srv.Region,
		"BATON_COMMIT_CMD=" + bin + " checkpoint commit",
	}
	a := host{dir: t.TempDir(), env: baseEnv(append(common, "RUNPOD_POD_ID=podalpha", "RUNPOD_API_KEY="+runpodKey, "RUNPOD_GPU_COUNT=1")...)}
	b := host{dir: t.TempDir(), env: baseEnv(append(common, "VAST_CONTAINERLABEL=C.4242", "CONTAINER_ID=4242", "CONTAINER_API_KEY="+vastKey)...)}
	args := func(h host) []string {
		return []string{"--store", store, "--run", "migrate", "--checkpoint-dir", filepath.Join(h.dir, "ckpt"),
			"--lease-duration", "10s", "--checkpoint-interval", "0", "--log-format", "json",
			"--gpu-check=false", // RUNPOD_GPU_COUNT=1 on a machine with no driver: refused otherwise
			"--", "python3", trainer, "--steps", "100000", "--step-seconds", "0.01", "--save-every", "10", "--notify"}
	}

	// Host A trains and commits after every save (--notify), until three
	// checkpoints are in the store.
	sa := startRun(t, bin, a, args(a)...)
	sa.waitFor(t, "starting fresh", func(l string) bool { return l == "starting fresh" })
	for len(summaries(t, bin, a.env, store, "migrate")) < 3 {
		sa.waitFor(t, "another step", func(l string) bool { return strings.HasPrefix(l, "step=") })
	}
	killTree(sa.cmd.Process.Pid) // baton and the trainer, no goodbye
	_, restA := sa.wait(t)
	outA := sa.stderr.String() + strings.Join(restA, "\n")

	// What a resume must start from: the newest committed checkpoint.
	list := summaries(t, bin, a.env, store, "migrate")
	latest := list[len(list)-1]
	show := exec.Command(bin, "checkpoint", "show", "--json", "--store", store, "--run", "migrate")
	show.Env = a.env
	raw, err := show.Output()
	if err != nil {
		t.Fatal(err)
	}
	var m checkpoint.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	var newest int
	for _, f := range m.Files {
		var step int
		if n, _ := fmt.Sscanf(f.Path, "checkpoint-%d/", &step); n == 1 && step > newest {
			newest = step
		}
	}

	// Host B: the same command. A's lease runs out within its 10 s; until
	// then B is turned away with status 75.
	deadline := time.Now().Add(time.Minute)
	var code int
	var lines []string
	var errB string
	for {
		code, lines, errB = runToEnd(t, bin, b, append(args(b)[:len(args(b))-7], "--steps", fmt.Sprint(newest+20), "--step-seconds", "0.001", "--save-every", "10")...)
		if code != 75 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second) // the lease expires by the clock: there is nothing to wait on
	}
	if code != 0 {
		t.Fatalf("host B: exit %d\n%s", code, errB)
	}
	if l, ok := hasLine(lines, "resumed from step="); !ok || l != fmt.Sprintf("resumed from step=%d", newest) {
		t.Fatalf("host B printed %q, want resumed from step=%d (checkpoint %d)", l, newest, latest.Seq)
	}
	platforms := map[string]bool{}
	for _, s := range summaries(t, bin, b.env, store, "migrate") {
		platforms[s.Platform] = true
	}
	if !platforms["runpod"] || !platforms["vast"] {
		t.Fatalf("checkpoint ls shows platforms %v, want runpod and vast", platforms)
	}
	for _, secret := range []string{srv.SecretKey, runpodKey, vastKey} {
		if strings.Contains(outA+errB+strings.Join(lines, "\n"), secret) {
			t.Fatalf("a secret appeared in baton's output")
		}
	}
}

// TestGracefulStop: SIGTERM reaches the trainer, which saves; the final
// commit lands; baton exits with the trainer's status.
func TestGracefulStop(t *testing.T) {
	bin, trainer := buildBaton(t), trainerPath(t)
	dir := t.TempDir()
	store := "file://" + filepath.Join(dir, "store")
	h := host{dir: dir, env: baseEnv()}
	s := startRun(t, bin, h, "--store", store, "--run", "stop", "--checkpoint-dir", filepath.Join(dir, "ckpt"),
		"--checkpoint-interval", "0", "--grace", "5s", "--",
		"python3", trainer, "--steps", "100000", "--step-seconds", "0.01", "--save-every", "1000")
	s.waitFor(t, "step 20", func(l string) bool { return l == "step=20 loss=" || strings.HasPrefix(l, "step=20 ") })
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, lines := s.wait(t)
	saved, ok := hasLine(lines, "saved on SIGTERM at step=")
	if code != 0 || !ok {
		t.Fatalf("exit %d, saved line %q; stderr:\n%s", code, saved, s.stderr)
	}
	step := strings.TrimPrefix(saved, "saved on SIGTERM at step=")
	cmd := exec.Command(bin, "checkpoint", "show", "--json", "--store", store, "--run", "stop")
	raw, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"checkpoint-`+step+`/model.bin"`) {
		t.Fatalf("the final commit does not hold checkpoint-%s", step)
	}
	logs, err := filepath.Glob(filepath.Join(dir, "store", "runs", "stop", "logs", "*.log"))
	if err != nil || len(logs) != 1 {
		t.Fatalf("log segments in the store: %v, %v; want one", logs, err)
	}
	if b, err := os.ReadFile(logs[0]); err != nil || !strings.Contains(string(b), saved) {
		t.Fatalf("the stored log segment lacks %q (%v)", saved, err)
	}
	if strings.Contains(s.stderr.String(), `"escalated":true`) {
		t.Fatal("the trainer had to be killed; it should have exited within the grace period")
	}
}

// TestRestarts: a trainer that crashes twice resumes each time and then
// finishes; with a cap of one restart, baton gives up with its status.
func TestRestarts(t *testing.T) {
	bin, trainer := buildBaton(t), trainerPath(t)
	cases := []struct {
		restarts, wantCode, wantStarts int
	}{
		{restarts: 3, wantCode: 0, wantStarts: 3},
		{restarts: 1, wantCode: 3, wantStarts: 2},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("restarts=%d", c.restarts), func(t *testing.T) {
			dir := t.TempDir()
			code, lines, stderr := runToEnd(t, bin, host{env: baseEnv()}, "--store", "file://"+filepath.Join(dir, "store"), "--run", "crash",
				"--checkpoint-dir", filepath.Join(dir, "ckpt"), "--checkpoint-interval", "0", "--telemetry-interval", "100ms",
				"--restarts", fmt.Sprint(c.restarts), "--restart-backoff", "10ms", "--",
				"python3", trainer, "--steps", "30", "--step-seconds", "0", "--save-every", "5", "--crash-at-step", "12", "--crash-times", "2")
			var starts, resumed int
			for _, l := range lines {
				if l == "starting fresh" || strings.HasPrefix(l, "resumed from step=") {
					starts++
				}
				if l == "resumed from step=10" {
					resumed++
				}
			}
			if code != c.wantCode || starts != c.wantStarts || resumed != c.wantStarts-1 {
				t.Fatalf("exit %d with %d starts (%d resumed from step 10), want exit %d and %d starts\n%s", code, starts, resumed, c.wantCode, c.wantStarts, stderr)
			}
			// The run's telemetry reached the store: at least the last host
			// sample, flushed when baton ended.
			parts, _ := filepath.Glob(filepath.Join(dir, "store", "runs", "crash", "telemetry", "*", "*.jsonl"))
			var host int
			for _, p := range parts {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				host += strings.Count(string(b), `{"type":"host"`)
			}
			if host == 0 {
				t.Errorf("no host telemetry in the store (parts %v)\n%s", parts, stderr)
			}
		})
	}
}

// TestTwoHostsOneRun: two hosts started on one run: exactly one trains, the
// other exits 75 without starting the trainer.
func TestTwoHostsOneRun(t *testing.T) {
	bin, trainer := buildBaton(t), trainerPath(t)
	dir := t.TempDir()
	store := "file://" + filepath.Join(dir, "store")
	runs := make([]*started, 2)
	for i := range runs {
		h := host{env: baseEnv(fmt.Sprintf("RUNPOD_POD_ID=pod%d", i))}
		runs[i] = startRun(t, bin, h, "--store", store, "--run", "shared", "--checkpoint-dir", filepath.Join(dir, fmt.Sprint("ckpt", i)),
			"--checkpoint-interval", "0", "--lease-wait", "0", "--", "python3", trainer, "--steps", "50", "--step-seconds", "0.01")
	}
	var trained, refused int
	for _, s := range runs {
		code, lines := s.wait(t)
		_, ran := hasLine(lines, "done step=")
		switch {
		case code == 0 && ran:
			trained++
		case code == 75 && len(lines) == 0:
			refused++
		default:
			t.Errorf("exit %d, %d trainer lines:\n%s", code, len(lines), s.stderr)
		}
	}
	if trained != 1 || refused != 1 {
		t.Fatalf("%d trained and %d were refused, want 1 and 1", trained, refused)
	}
}

// killTree SIGKILLs pid and all its descendants (the trainer runs in a
// process group of its own, so killing baton's group does not reach it), as
// a host that disappears would.
func killTree(pid int) {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var p int
		if _, err := fmt.Sscanf(e.Name(), "%d", &p); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after ')'.
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		var ppid int
		if len(fields) > 1 {
			fmt.Sscanf(fields[1], "%d", &ppid)
		}
		children[ppid] = append(children[ppid], p)
	}
	var kill func(int)
	kill = func(p int) {
		syscall.Kill(p, syscall.SIGSTOP) // no new children while we walk
		for _, c := range children[p] {
			kill(c)
		}
		syscall.Kill(p, syscall.SIGKILL)
	}
	kill(pid)
}

// TestPID1 runs baton as PID 1 of a new PID namespace with a trainer that
// leaves orphans: baton reaps them all and exits with the trainer's status.
func TestPID1(t *testing.T) {
	bin, trainer := buildBaton(t), trainerPath(t)
	if err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").Run(); err != nil {
		testenv.Unavailable(t, "unshare --pid not permitted here: %v", err)
	}
	dir := t.TempDir()
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--kill-child", bin, "run",
		"--store", "file://"+filepath.Join(dir, "store"), "--run", "pid1", "--checkpoint-dir", filepath.Join(dir, "ckpt"),
		"--checkpoint-interval", "0", "--log-format", "json", "--",
		"python3", trainer, "--steps", "150", "--step-seconds", "0.01", "--orphans", "3", "--orphan-seconds", "0.2")
	cmd.Env = baseEnv()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		t.Fatalf("baton as PID 1: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{`"pid1":true`, `"orphans_reaped":3`} {
		if !strings.Contains(stderr.String(), want) {
			t.Fatalf("baton's log lacks %s:\n%s", want, stderr.String())
		}
	}
	if !strings.Contains(stdout.String(), "done step=150") {
		t.Fatalf("the trainer did not finish:\n%s", stdout.String())
	}
}

// TestDetachIsIdempotent: `baton run --detach` (Vast.ai's onstart line) starts
// the run in the background and returns; run again while it lives, it starts
// nothing.
func TestDetachIsIdempotent(t *testing.T) {
	bin, trainer := buildBaton(t), trainerPath(t)
	dir := t.TempDir()
	pidFile, logFile := filepath.Join(dir, "baton.pid"), filepath.Join(dir, "baton.log")
	args := []string{"run", "--detach", "--pid-file", pidFile, "--log-file", logFile,
		"--store", "file://" + filepath.Join(dir, "store"), "--run", "detached", "--checkpoint-dir", filepath.Join(dir, "ckpt"),
		"--checkpoint-interval", "0", "--", "python3", trainer, "--steps", "100000", "--step-seconds", "0.01"}
	start := func() string {
		cmd := exec.Command(bin, args...)
		cmd.Env = baseEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("baton run --detach: %v\n%s", err, out)
		}
		return string(out)
	}
	first := start()
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("no pid file after %q: %v", first, err)
	}
	var pid int
	if _, err := fmt.Sscanf(string(raw), "%d", &pid); err != nil || syscall.Kill(pid, 0) != nil {
		t.Fatalf("pid file %q does not name a live process", raw)
	}
	t.Cleanup(func() { killTree(pid) })
	// The background run trains: its trainer's steps reach the log file. It
	// is a process of its own, so there is no signal to wait on but the file.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if b, _ := os.ReadFile(logFile); strings.Contains(string(b), "step=3 ") {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logFile)
			t.Fatalf("the background run did not train:\n%s", b)
		}
	}
	if second := start(); !strings.Contains(second, "already running") {
		t.Fatalf("second start printed %q, want it to find the run already running", second)
	}
	if again, _ := os.ReadFile(pidFile); string(again) != string(raw) {
		t.Fatalf("the second start replaced the pid file: %q, was %q", again, raw)
	}
}

// TestLostLeaseStopsTheRun: another host takes the run over (here: its
// lease.json written straight into the store); the running host learns it at
// its next renewal, stops the trainer, commits nothing more and exits 76.
func TestLostLeaseStopsTheRun(t *testing.T) {
	bin, trainer := buildBaton(t), trainerPath(t)
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	s := startRun(t, bin, host{env: baseEnv("RUNPOD_POD_ID=first")}, "--store", "file://"+storeDir, "--run", "taken",
		"--checkpoint-dir", filepath.Join(dir, "ckpt"), "--checkpoint-interval", "0", "--lease-duration", "10s", "--",
		"python3", trainer, "--steps", "100000", "--step-seconds", "0.01")
	s.waitFor(t, "step 5", func(l string) bool { return strings.HasPrefix(l, "step=5 ") })

	takeLease(t, filepath.Join(storeDir, "runs", "taken", "lease.json"))
	manifests := func() int {
		m, _ := filepath.Glob(filepath.Join(storeDir, "runs", "taken", "manifests", "*.json"))
		return len(m)
	}
	before := manifests()

	code, _ := s.wait(t)
	if code != 76 {
		t.Fatalf("exit %d after the lease was taken over, want 76\n%s", code, s.stderr)
	}
	if after := manifests(); after != before {
		t.Fatalf("%d manifests after the takeover, %d before: the fenced host committed", after, before)
	}
	if !strings.Contains(s.stderr.String(), "lease lost") {
		t.Fatalf("baton's log does not say the lease was lost:\n%s", s.stderr)
	}
}
