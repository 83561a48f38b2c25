package agent_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/batonrun/baton/internal/s3test"
)

// No secret on disk (issue 17 item 2): a `baton run --detach` with keys
// planted in its environment, and one with them in an --env-file, leaves
// none of them in any file it could write (the --detach log, the pid file,
// HOME, TMPDIR, the checkpoint directory) nor in any object of the store.

// plantedSecrets are unique values for every kind of secret baton is given;
// each holds a '/' and a '+' so that its URL-encoded form differs.
func plantedSecrets(t *testing.T) map[string]string {
	id := fmt.Sprintf("%d", time.Now().UnixNano())
	return map[string]string{
		"AWS_SECRET_ACCESS_KEY": "awsSecret/" + id + "+Q1",
		"RUNPOD_API_KEY":        "rpKey/" + id + "+Q2",
		"CONTAINER_API_KEY":     "vastKey/" + id + "+Q3",
		"BATON_METRICS_TOKEN":   "metricsTok/" + id + "+Q4",
		"AWS_SESSION_TOKEN":     "sessionTok/" + id + "+Q5",
		"notify path":           "hookPath" + id + "Q6",
		"notify query":          "amzToken/" + id + "+Q7",
	}
}

// encodings returns the forms in which value would be recognised: raw,
// URL-encoded (query and path), JSON-escaped, and base64 (standard and
// URL alphabets, at each of the three alignments in a longer text).
func encodings(value string) []string {
	out := []string{value, url.QueryEscape(value), url.PathEscape(value), strings.ReplaceAll(value, "/", `\/`)}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for k, skip := range []int{0, 2, 3} {
			s := enc.EncodeToString(append(make([]byte, k), value...))
			out = append(out, s[skip:len(s)-4])
		}
	}
	return out
}

// leaks returns "WHERE holds NAME" for each planted secret that data holds
// in any of its encodings.
func leaks(where string, data []byte, secrets map[string]string) []string {
	var found []string
	for name, value := range secrets {
		for _, form := range encodings(value) {
			if bytes.Contains(data, []byte(form)) {
				found = append(found, fmt.Sprintf("%s holds %s (as %q)", where, name, form))
				break
			}
		}
	}
	return found
}

// leaksUnder walks root and reports the files that hold a planted secret.
func leaksUnder(t *testing.T, root string, secrets map[string]string) (found []string, files int) {
	t.Helper()
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("reading %s: %v", path, err)
			return nil
		}
		files++
		found = append(found, leaks(path, data, secrets)...)
		return nil
	})
	return found, files
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// detachAndWait runs `baton run --detach` with env and args (the trainer's
// command after "--"), waits until the background baton has exited, and
// returns the log file's text.
func detachAndWait(t *testing.T, bin string, env []string, pidFile, logFile string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"run", "--detach", "--pid-file", pidFile, "--log-file", logFile}, args...)...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("baton run --detach: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("no pid file after %q: %v", out, err)
	}
	var pid int
	if _, err := fmt.Sscanf(string(raw), "%d", &pid); err != nil {
		t.Fatalf("pid file %q", raw)
	}
	t.Cleanup(func() { killTree(pid) })
	for deadline := time.Now().Add(2 * time.Minute); syscall.Kill(pid, 0) == nil; time.Sleep(50 * time.Millisecond) {
		if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
				break // exited; its parent, baton --detach, is gone and cannot reap it
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logFile)
			t.Fatalf("the background baton did not end within 2m:\n%s", b)
		}
	}
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNoSecretOnDiskAfterDetach plants a value in each secret baton may be
// given (the store's key and session token, RunPod's and Vast's API keys,
// the metrics token, a notify webhook's path token and its
// X-Amz-Security-Token parameter), runs `baton run --detach` with a short
// trainer that commits, uploads telemetry and its log segment, and a notify
// hook; once baton has exited, no file under HOME, TMPDIR, the checkpoint
// directory or beside the log and pid files, and no object of the store,
// holds any of them, raw, URL-encoded, JSON-escaped or in base64. On the
// file store, and on versitygw, where the key is the real one.
func TestNoSecretOnDiskAfterDetach(t *testing.T) {
	bin, trainer := buildBaton(t), trainerPath(t)
	for _, kind := range []string{"file", "versitygw"} {
		t.Run(kind, func(t *testing.T) {
			secrets := plantedSecrets(t)
			root := t.TempDir()
			home, tmp, ckpt, run := filepath.Join(root, "home"), filepath.Join(root, "tmp"), filepath.Join(root, "ckpt"), filepath.Join(root, "run")
			for _, d := range []string{home, tmp, run} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			var received bytes.Buffer
			hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(&received, r.Body)
			}))
			defer hook.Close()
			notifyURL := hook.URL + "/hooks/" + secrets["notify path"] + "?X-Amz-Security-Token=" + url.QueryEscape(secrets["notify query"])

			env := baseEnv("HOME="+home, "TMPDIR="+tmp, "BATON_NOTIFY="+notifyURL,
				"RUNPOD_API_KEY="+secrets["RUNPOD_API_KEY"], "CONTAINER_API_KEY="+secrets["CONTAINER_API_KEY"],
				"BATON_METRICS_TOKEN="+secrets["BATON_METRICS_TOKEN"])
			var store string
			var srv *s3test.Server
			var bucket string
			if kind == "file" {
				store = "file://" + filepath.Join(root, "store")
				env = append(env, "AWS_ACCESS_KEY_ID=AKIAPLANTED", "AWS_SECRET_ACCESS_KEY="+secrets["AWS_SECRET_ACCESS_KEY"],
					"AWS_SESSION_TOKEN="+secrets["AWS_SESSION_TOKEN"])
			} else {
				srv = s3test.Start(t, s3test.Versitygw)
				bucket = srv.NewBucket(t)
				store = "s3://" + bucket + "/runs?endpoint=" + srv.Endpoint
				secrets["AWS_SECRET_ACCESS_KEY"] = srv.SecretKey // the real key: it must work and stay off the disk
				delete(secrets, "AWS_SESSION_TOKEN")             // versitygw would refuse a session token
				env = append(env, "AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+srv.SecretKey, "AWS_REGION="+srv.Region)
			}
			log := detachAndWait(t, bin, env, filepath.Join(run, "baton.pid"), filepath.Join(run, "baton.log"),
				"--store", store, "--run", "secret", "--checkpoint-dir", ckpt, "--checkpoint-interval", "0",
				"--metrics-addr", freeAddr(t), "--telemetry-interval", "100ms", "--telemetry-upload", "10s", "--",
				"python3", trainer, "--steps", "40", "--step-seconds", "0.05", "--save-every", "10")
			if !strings.Contains(log, "done step=40") {
				t.Fatalf("the background run did not finish:\n%s", log)
			}

			var found []string
			var files int
			for _, dir := range []string{home, tmp, ckpt, run} {
				f, n := leaksUnder(t, dir, secrets)
				found, files = append(found, f...), files+n
			}
			objects := 0
			if kind == "file" {
				f, n := leaksUnder(t, filepath.Join(root, "store"), secrets)
				found, objects = append(found, f...), n
			} else {
				found = append(found, leaksInBucket(t, srv, bucket, secrets, &objects)...)
			}
			for _, f := range found {
				t.Error(f)
			}
			if objects < 3 || files < 2 {
				t.Fatalf("only %d files and %d objects were looked at", files, objects)
			}
			for _, want := range []string{"/logs/", "/telemetry/"} {
				if !hasObject(t, root, srv, bucket, want) {
					t.Errorf("the store holds no %s object: the test saw less than it should", want)
				}
			}
			if received.Len() == 0 {
				t.Errorf("the notify hook received nothing")
			}
			t.Logf("%d files and %d objects hold no planted secret", files, objects)
		})
	}
}

// leaksInBucket reads every object of bucket and reports those that hold a
// planted secret; n counts them.
func leaksInBucket(t *testing.T, srv *s3test.Server, bucket string, secrets map[string]string, n *int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var found []string
	for _, key := range bucketKeys(t, srv, bucket) {
		obj, err := srv.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(obj.Body)
		obj.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		*n++
		found = append(found, leaks("s3://"+bucket+"/"+key, data, secrets)...)
	}
	return found
}

func bucketKeys(t *testing.T, srv *s3test.Server, bucket string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(srv.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

// hasObject reports whether the store (a file store under root/store, or
// bucket on srv) holds an object whose key contains part.
func hasObject(t *testing.T, root string, srv *s3test.Server, bucket, part string) bool {
	if srv != nil {
		for _, k := range bucketKeys(t, srv, bucket) {
			if strings.Contains("/"+k, part) {
				return true
			}
		}
		return false
	}
	found := false
	filepath.WalkDir(filepath.Join(root, "store"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.Contains(path, part) {
			found = true
		}
		return nil
	})
	return found
}

// TestEnvFile: `baton run --detach --env-file F` reads F's NAME=value lines
// into its environment and deletes F before it returns; the trainer gets the
// variables (a key too, though no file holds it), the background baton uses
// them (BATON_RUN_ID from the file names the run), and a secret of the file
// is in no file afterwards.
func TestEnvFile(t *testing.T) {
	bin := buildBaton(t)
	root := t.TempDir()
	home, tmp, run := filepath.Join(root, "home"), filepath.Join(root, "tmp"), filepath.Join(root, "run")
	for _, d := range []string{home, tmp, run} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	secret := fmt.Sprintf("fileKey/%d+Q8", time.Now().UnixNano())
	envFile := filepath.Join(root, "baton.env")
	content := "# keys for baton\n\nexport HF_TOKEN='" + secret + "'\nBATON_RUN_ID=from-file\nGREETING=\"hello world\"\nBATON_KEEP=7\n"
	if err := os.WriteFile(envFile, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	seen := filepath.Join(root, "seen")
	// The trainer records what it got, without the key itself: its length
	// and whether it is the planted one.
	script := fmt.Sprintf(`import os
t = os.environ.get("HF_TOKEN", "")
open(%q, "w").write("run=%%s greeting=%%s keep=%%s token_ok=%%s\n" %% (os.environ.get("BATON_RUN_ID"), os.environ.get("GREETING"), os.environ.get("BATON_KEEP"), t == %q))
print("trainer saw the token:", t)
`, seen, secret)
	storeDir := filepath.Join(root, "store")
	env := baseEnv("HOME="+home, "TMPDIR="+tmp, "BATON_KEEP=3")
	log := detachAndWait(t, bin, env, filepath.Join(run, "baton.pid"), filepath.Join(run, "baton.log"),
		"--env-file", envFile, "--store", "file://"+storeDir, "--checkpoint-dir", filepath.Join(root, "ckpt"),
		"--metrics-addr", "", "--telemetry-interval", "0", "--", "python3", "-c", script)
	if _, err := os.Stat(envFile); !os.IsNotExist(err) {
		t.Errorf("the --env-file is still there after baton run --detach returned (%v)", err)
	}
	got, err := os.ReadFile(seen)
	if err != nil {
		t.Fatalf("the trainer did not run: %v\n%s", err, log)
	}
	// BATON_KEEP was set already: the environment's 3 wins over the file's 7.
	if want := "run=from-file greeting=hello world keep=3 token_ok=True\n"; string(got) != want {
		t.Errorf("the trainer saw %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(storeDir, "runs", "from-file")); err != nil {
		t.Errorf("BATON_RUN_ID from the file did not name the run: %v", err)
	}
	if !strings.Contains(log, "trainer saw the token: [REDACTED]") {
		t.Errorf("the trainer's line with the key is not redacted in the --detach log:\n%s", log)
	}
	secrets := map[string]string{"HF_TOKEN": secret}
	for _, dir := range []string{root} {
		found, _ := leaksUnder(t, dir, secrets)
		for _, f := range found {
			t.Error(f)
		}
	}
}
