package agent_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/batonrun/baton/internal/s3test"
)

// TestBadURLsExitTwoBeforeAnything: a bad store, data or code URL (an
// unknown ?parameter, an invalid bucket name, a scheme baton does not know)
// stops the real binary with exit status 2 and one line that names the
// key, before anything happens: nothing is written to the store or the
// checkpoint directory, no metrics port is opened (baton logs nothing else,
// and the port stays free), the trainer never starts. A credential in a
// URL is never printed.
func TestBadURLsExitTwoBeforeAnything(t *testing.T) {
	bin := buildBaton(t)
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		yaml string // written to baton.yaml and named by BATON_CONFIG
		want string // the whole line
	}{
		{name: "store bucket", args: []string{"--store", "s3://my_bucket/p"},
			want: `baton run: --store=s3://my_bucket/p: "my_bucket" is not a valid bucket name: want 3 to 63 lowercase letters, digits, dots and hyphens, beginning and ending with a letter or digit`},
		{name: "store unknown parameter", env: []string{"BATON_STORE=s3://my-bucket/p?regoin=eu-west-1"},
			want: `baton run: BATON_STORE="s3://my-bucket/p?regoin=eu-west-1": unknown parameter "regoin" (known: endpoint, region, profile, driver, addressing)`},
		{name: "store credentials", args: []string{"--store", "s3://AKIAEXAMPLE:hunter2secretvalue@my-bucket/p"},
			want: `baton run: --store=s3://[REDACTED]@my-bucket/p: credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile) instead`},
		{name: "data unknown parameter", args: []string{"--store", "{store}", "--data", "s3://my-bucket/tokens?foo=1=/tmp/tokens"},
			want: `baton run: --data[0]=s3://my-bucket/tokens?foo=1=/tmp/tokens: SRC: unknown parameter "foo" (known: endpoint, region, profile, driver, addressing)`},
		{name: "data scheme in the file", args: []string{"--store", "{store}"}, yaml: "data:\n  - gs://my-bucket/tokens=/tmp/tokens\n",
			want: `baton run: baton.yaml:2: data[0]: "gs://my-bucket/tokens=/tmp/tokens": SRC: unknown scheme "gs": want s3://bucket/prefix, file:///path or a path`},
		{name: "code bucket", args: []string{"--store", "{store}", "--code", "s3://Code.Bucket/src.tar.gz"},
			want: `baton run: --code=s3://Code.Bucket/src.tar.gz: "Code.Bucket" is not a valid bucket name: want 3 to 63 lowercase letters, digits, dots and hyphens, beginning and ending with a letter or digit`},
		{name: "code endpoint with a token", env: []string{"BATON_STORE={store}", "BATON_CODE=s3://my-bucket/src?endpoint=https://u:hunter2secretvalue@minio.example"},
			want: `baton run: BATON_CODE="s3://my-bucket/src?endpoint=https://[REDACTED]@minio.example": endpoint: credentials do not belong in the URL`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			store := filepath.Join(dir, "store")
			ckpt := filepath.Join(dir, "ckpt")
			marker := filepath.Join(dir, "trainer-ran")
			// A free port for the metrics endpoint, checked after the run.
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			metrics := l.Addr().String()
			l.Close()
			env := baseEnv("BATON_METRICS_ADDR=" + metrics)
			for _, kv := range tc.env {
				env = append(env, strings.ReplaceAll(kv, "{store}", "file://"+store))
			}
			if tc.yaml != "" {
				if err := os.WriteFile(filepath.Join(dir, "baton.yaml"), []byte(tc.yaml), 0o644); err != nil {
					t.Fatal(err)
				}
				env = append(env, "BATON_CONFIG=baton.yaml") // read from dir, where baton runs
			}
			args := []string{"run", "--run", "r1", "--checkpoint-dir", ckpt}
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "{store}", "file://"+store))
			}
			cmd := exec.Command(bin, append(args, "--", "touch", marker)...)
			cmd.Dir, cmd.Env = dir, env
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err = cmd.Run()
			code := cmd.ProcessState.ExitCode()
			if code != 2 {
				t.Fatalf("exit %d (%v), want 2; stderr:\n%s", code, err, stderr.String())
			}
			if got := strings.TrimSuffix(stderr.String(), "\n"); got != tc.want {
				t.Errorf("stderr\n got %q\nwant %q", got, tc.want)
			}
			if strings.Contains(stderr.String()+stdout.String(), "hunter2") {
				t.Error("a credential was printed")
			}
			for _, p := range []string{store, ckpt, marker} {
				if _, err := os.Lstat(p); !os.IsNotExist(err) {
					t.Errorf("%s exists after a configuration error (%v)", p, err)
				}
			}
			// Nothing listens on the metrics port, and it can be taken.
			if l, err := net.Listen("tcp", metrics); err != nil {
				t.Errorf("the metrics port %s is not free after the run: %v", metrics, err)
			} else {
				l.Close()
			}
		})
	}
}

// savingTrainer saves model.bin, then keeps writing big.bin.tmp (as a
// trainer saves under a temporary name) for the whole of a commit it asks
// the agent for, prints the agent's answer, renames big.bin.tmp to big.bin
// and asks for a commit again.
const savingTrainer = `
import os, socket, threading
d = os.environ["BATON_CHECKPOINT_DIR"]
with open(os.path.join(d, "model.bin"), "wb") as f:
    f.write(os.urandom(1 << 20))
stop, started = threading.Event(), threading.Event()
def write():
    fd = os.open(os.path.join(d, "big.bin.tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    buf, n = os.urandom(1 << 16), 0
    while not stop.is_set():
        os.write(fd, buf)
        n += 1
        if n % 64 == 0:
            os.lseek(fd, 0, os.SEEK_SET)  # 4 MiB at most, rewritten over and over
        started.set()
    os.close(fd)
def commit():
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.environ["BATON_AGENT_SOCKET"])
    s.sendall(b"commit\n")
    answer = s.makefile().readline().strip()
    s.close()
    return answer
w = threading.Thread(target=write)
w.start()
started.wait()
print("while saving:", commit(), flush=True)
stop.set()
w.join()
os.rename(os.path.join(d, "big.bin.tmp"), os.path.join(d, "big.bin"))
print("after saving:", commit(), flush=True)
`

// TestCommitWhileTheTrainerSaves: a commit that runs while the trainer
// writes big.bin.tmp is not dropped ("checkpoint directory changed during
// the commit"): the temporary file is left out (the default --exclude) and
// the rest committed; once renamed, the next commit takes big.bin. On the
// file store and on a real S3 server (versitygw).
func TestCommitWhileTheTrainerSaves(t *testing.T) {
	bin := buildBaton(t)
	stores := map[string]func(t *testing.T) (string, []string){
		"file": func(t *testing.T) (string, []string) { return "file://" + filepath.Join(t.TempDir(), "store"), nil },
		"versitygw": func(t *testing.T) (string, []string) {
			srv := s3test.Start(t, s3test.Versitygw)
			return "s3://" + srv.NewBucket(t) + "/runs?endpoint=" + srv.Endpoint,
				[]string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey, "AWS_REGION=" + srv.Region}
		},
	}
	for _, name := range []string{"file", "versitygw"} {
		t.Run(name, func(t *testing.T) {
			store, env := stores[name](t)
			h := host{dir: t.TempDir(), env: baseEnv(env...)}
			code, lines, stderr := runToEnd(t, bin, h, "--store", store, "--run", "saving",
				"--checkpoint-dir", filepath.Join(h.dir, "ckpt"), "--checkpoint-interval", "0", "--log-format", "json",
				"--metrics-addr", "", "--telemetry-interval", "0", "--",
				"python3", "-c", savingTrainer)
			if code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, stderr)
			}
			for _, want := range []string{"while saving: ok", "after saving: ok"} {
				if _, ok := hasLine(lines, want); !ok {
					t.Errorf("no line %q in the trainer's output %q; stderr:\n%s", want, lines, stderr)
				}
			}
			if strings.Contains(stderr, "changed during the commit") {
				t.Errorf("a commit was dropped:\n%s", stderr)
			}
			list := summaries(t, bin, h.env, store, "saving")
			if len(list) < 2 {
				t.Fatalf("%d checkpoints, want at least 2", len(list))
			}
			files := func(seq int64) string {
				show := exec.Command(bin, "checkpoint", "show", "--json", "--store", store, "--run", "saving", strconv.FormatInt(seq, 10))
				show.Env = h.env
				out, err := show.Output()
				if err != nil {
					t.Fatalf("checkpoint show %d: %v", seq, err)
				}
				return string(out)
			}
			first, second := files(list[0].Seq), files(list[1].Seq)
			if !strings.Contains(first, `"model.bin"`) || strings.Contains(first, `"big.bin.tmp"`) || strings.Contains(first, `"big.bin"`) {
				t.Errorf("the commit made while saving should hold model.bin alone:\n%s", first)
			}
			if !strings.Contains(second, `"model.bin"`) || !strings.Contains(second, `"big.bin"`) || strings.Contains(second, `"big.bin.tmp"`) {
				t.Errorf("the commit after the rename should hold model.bin and big.bin:\n%s", second)
			}
		})
	}
}
