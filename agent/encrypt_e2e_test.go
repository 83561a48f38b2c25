package agent_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonrun/baton/internal/s3test"
)

// TestEncryptedRunSealsEverything (issue 17 item 3): a run with
// --encryption-key whose trainer writes a file holding a unique marker and
// prints it (so that it lands in the log segment), with telemetry on,
// leaves no object in the store that holds the marker or the printed line,
// raw or encoded; its log segment and telemetry are sealed objects.
// `baton checkpoint restore` without the key fails in one line, with it
// restores the marker file; a second run with another key fails in one line.
func TestEncryptedRunSealsEverything(t *testing.T) {
	bin := buildBaton(t)
	for _, kind := range []string{"file", "versitygw"} {
		t.Run(kind, func(t *testing.T) {
			id := rand.Text()
			marker := "sealedMarker/" + id + "+M1"
			line := "the encrypted trainer says hello " + id + " Q2"
			secrets := map[string]string{"the marker": marker, "the printed line": line}
			root := t.TempDir()
			ckpt := filepath.Join(root, "ckpt")
			env := baseEnv("HOME="+filepath.Join(root, "home"), "TMPDIR="+t.TempDir())
			var store, bucket string
			var srv *s3test.Server
			if kind == "file" {
				store = "file://" + filepath.Join(root, "store")
			} else {
				srv = s3test.Start(t, s3test.Versitygw)
				bucket = srv.NewBucket(t)
				store = "s3://" + bucket + "/runs?endpoint=" + srv.Endpoint
				env = append(env, "AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+srv.SecretKey, "AWS_REGION="+srv.Region)
			}
			key, other := newKey(t), newKey(t)
			// The marker travels in the trainer's arguments, not its
			// environment: the log segment redacts values of the environment.
			script := `import os, sys, time
d = os.environ["BATON_CHECKPOINT_DIR"]
os.makedirs(d, exist_ok=True)
with open(os.path.join(d, "marker.txt"), "w") as f:
    f.write(sys.argv[1])
print(sys.argv[1], flush=True)
print(sys.argv[2], flush=True)
time.sleep(1.5)
`
			args := func(k string) []string {
				return []string{"--store", store, "--run", "sealed", "--checkpoint-dir", ckpt, "--checkpoint-interval", "0",
					"--encryption-key", k, "--gpu-check=false",
					"--telemetry-interval", "100ms", "--telemetry-upload", "10s", "--",
					"python3", "-c", script, marker, line}
			}
			h := host{env: env, dir: root}
			code, lines, stderr := runToEnd(t, bin, h, args(key)...)
			if code != 0 || !strings.Contains(strings.Join(lines, "\n"), line) {
				t.Fatalf("baton run: exit %d, stdout %q\n%s", code, lines, stderr)
			}

			// No object holds the marker or the printed line.
			var found []string
			objects := 0
			if kind == "file" {
				f, n := leaksUnder(t, filepath.Join(root, "store"), secrets)
				found, objects = f, n
			} else {
				found = leaksInBucket(t, srv, bucket, secrets, &objects)
			}
			for _, f := range found {
				t.Error(f)
			}
			if objects < 4 {
				t.Fatalf("only %d objects were looked at", objects)
			}
			for _, want := range []string{"/logs/", "/telemetry/"} {
				if !hasObject(t, root, srv, bucket, want) {
					t.Errorf("the store holds no %s object: the test saw less than it should", want)
				}
			}
			if kind == "file" {
				sealedUnder(t, filepath.Join(root, "store"), "/logs/", "/telemetry/")
			}

			// Restore without the key: one line naming the run as encrypted.
			restore := func(k string, dir string) (string, error) {
				a := []string{"checkpoint", "restore", "--store", store, "--run", "sealed"}
				if k != "" {
					a = append(a, "--encryption-key", k)
				}
				cmd := exec.Command(bin, append(a, dir)...)
				cmd.Env = env
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			out, err := restore("", filepath.Join(root, "plainless"))
			if err == nil || !strings.Contains(out, "run sealed is encrypted") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
				t.Errorf("restore without the key: %v, output %q, want one line saying the run is encrypted", err, out)
			}
			// verify --all needs no key: it checks what the envelopes list.
			verify := exec.Command(bin, "checkpoint", "verify", "--all", "--store", store, "--run", "sealed")
			verify.Env = env
			if out, err := verify.CombinedOutput(); err != nil || !strings.Contains(string(out), "present with the right size") {
				t.Errorf("verify --all without the key: %v\n%s", err, out)
			}
			dst := filepath.Join(root, "restored")
			if out, err := restore(key, dst); err != nil {
				t.Fatalf("restore with the key: %v\n%s", err, out)
			}
			if got, err := os.ReadFile(filepath.Join(dst, "marker.txt")); err != nil || string(got) != marker {
				t.Errorf("restored marker.txt: %q, %v; want %q", got, err, marker)
			}

			// A second run with another key is refused in one line.
			os.RemoveAll(ckpt)
			code, _, stderr = runToEnd(t, bin, h, args(other)...)
			if code == 0 || !strings.Contains(stderr, "the key does not fit") {
				t.Errorf("a run with another key: exit %d, want a failure saying the key does not fit\n%s", code, stderr)
			}
			var fit []string
			for _, l := range strings.Split(stderr, "\n") {
				if strings.Contains(l, "the key does not fit") {
					fit = append(fit, l)
				}
			}
			t.Logf("%d objects hold neither the marker nor the printed line; another key: %q", objects, fit)
		})
	}
}

func newKey(t *testing.T) string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// sealedUnder checks that every file of a file store whose path holds one of
// parts is a sealed object.
func sealedUnder(t *testing.T, root string, parts ...string) {
	t.Helper()
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		for _, p := range parts {
			if strings.Contains(filepath.ToSlash(path), p) {
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(data, []byte("baton-sealed-v1 ")) {
					t.Errorf("%s is not sealed: %.60q", path, data)
				}
			}
		}
		return nil
	})
}
