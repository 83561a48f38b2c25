package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The secrets of URLs (user information, also of a URL nested in another's
// query, and the values of secret query parameters) never reach what baton
// prints, logs or stores (issue 13 item 5).

// secretsIn returns the secrets of want that text holds.
func secretsIn(text string, secrets ...string) []string {
	var found []string
	for _, s := range secrets {
		if strings.Contains(text, s) {
			found = append(found, s)
		}
	}
	return found
}

// TestURLSecretsAreNotPrinted runs pull, checkpoint ls and run with URLs
// that carry secrets; each fails on the URL and must say so without them.
func TestURLSecretsAreNotPrinted(t *testing.T) {
	dir := t.TempDir()
	secrets := []string{"PW-one-1111", "SIG-two-2222", "TOK-three-333", "SIG-four-4444", "PW-five-5555", "TOK-six-6666", "PW-seven-777"}
	store := "file://" + filepath.Join(dir, "store")
	cases := []struct {
		name    string
		args    []string
		code    int
		environ map[string]string
	}{
		{"pull presigned", []string{"pull", "--progress=none", "s3://bkt/p?X-Amz-Signature=SIG-two-2222&X-Amz-Security-Token=TOK-three-333", dir}, exitUsage, nil},
		{"pull nested endpoint", []string{"pull", "--progress=none", "s3://bkt/p?endpoint=http://u:PW-one-1111@127.0.0.1:1", dir}, exitUsage, nil},
		{"pull nested endpoint encoded", []string{"pull", "--progress=none", "s3://bkt/p?endpoint=http%3A%2F%2Fu%3APW-five-5555%40127.0.0.1%3A1", dir}, exitUsage, nil},
		{"pull token and sig", []string{"pull", "s3://bkt/p?token=TOK-six-6666&sig=SIG-four-4444", dir}, exitUsage, nil},
		{"checkpoint ls nested endpoint", []string{"checkpoint", "ls", "--run", "r", "--store", "s3://bkt/p?endpoint=http://u:PW-seven-777@h"}, exitUsage, nil},
		{"checkpoint ls token", []string{"checkpoint", "ls", "--run", "r", "--store", "s3://bkt/p?Token=TOK-six-6666"}, exitUsage, nil},
		{"doctor flag", []string{"doctor", "--run", "r", "--store", "s3://bkt/p?X-Amz-Signature=SIG-two-2222&endpoint=http://u:PW-one-1111@h"}, exitUsage, nil},
		{"doctor report", []string{"doctor", "--run", "r"}, exitFailure,
			map[string]string{"BATON_STORE": "s3://bkt/p?X-Amz-Signature=SIG-two-2222&endpoint=http://u:PW-one-1111@h"}},
		{"doctor json", []string{"doctor", "--json", "--run", "r"}, exitFailure,
			map[string]string{"BATON_STORE": "s3://bkt/p?endpoint=http%3A%2F%2Fu%3APW-five-5555%40h&sig=SIG-four-4444"}},
		{"run store", []string{"run", "--run", "r", "--store", "s3://bkt/p?endpoint=http://u:PW-one-1111@127.0.0.1:1", "--", "true"}, exitUsage, nil},
		{"run data", []string{"run", "--run", "r", "--store", store, "--data", "s3://bkt/d?X-Amz-Signature=SIG-two-2222=" + filepath.Join(dir, "d"), "--", "true"}, exitUsage, nil},
		{"run code", []string{"run", "--run", "r", "--store", store, "--code", "s3://bkt/c?endpoint=http://u:PW-five-5555@h", "--", "true"}, exitUsage, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runBaton(t, c.environ, c.args...)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, c.code, r.stdout, r.stderr)
			}
			if found := secretsIn(r.stdout+r.stderr, secrets...); found != nil {
				t.Fatalf("printed %q:\n%s%s", found, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout+r.stderr, "[REDACTED]") {
				t.Fatalf("the output does not show where the secret was:\n%s%s", r.stdout, r.stderr)
			}
		})
	}
}

// TestRunFailedLineHasNoURLSecret: a --code tarball whose URL holds a
// password fails to download; baton run's "run failed" line names the URL
// without it.
func TestRunFailedLineHasNoURLSecret(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	dir := t.TempDir()
	code := strings.Replace(srv.URL, "http://", "http://me:PW-code-8888@", 1) + "/code.tgz"
	r := runBaton(t, map[string]string{"BATON_LOG_FORMAT": "json"}, "run", "--run", "r", "--store", "file://"+filepath.Join(dir, "store"),
		"--checkpoint-dir", filepath.Join(dir, "ckpt"), "--code", code, "--code-dir", filepath.Join(dir, "code"),
		"--metrics-addr=", "--telemetry-interval=0", "--", "true")
	if r.code != 1 || !strings.Contains(r.stderr, `"msg":"run failed"`) || !strings.Contains(r.stderr, "me:[REDACTED]@") && !strings.Contains(r.stderr, "[REDACTED]@127.0.0.1") {
		t.Fatalf("exit %d, want 1 and a run failed line naming the URL\n%s", r.code, r.stderr)
	}
	if found := secretsIn(r.stdout+r.stderr, "PW-code-8888"); found != nil {
		t.Fatalf("printed %q:\n%s", found, r.stderr)
	}
}

// TestRunLogSegmentAndTrainerEnv: the stored log segment of a run holds the
// trainer's lines without the secrets of URLs or of secret-named
// variables, and the trainer gets RUNPOD_API_KEY only with --pass-env.
func TestRunLogSegmentAndTrainerEnv(t *testing.T) {
	trainer := `echo "fetch https://u:PW-seg-9999@h/x?X-Amz-Signature=SIG-seg-9999"; echo "key=${RUNPOD_API_KEY:-absent}"; printf 'no newline ?sig=SIG-tail-9999'`
	cases := []struct {
		name     string
		passEnv  []string
		stdout   string // a line of the trainer's stdout, which baton passes on unchanged
		segment  []string
		hidden   []string // not in the segment, nor in baton's log
		absentIn string   // not in stdout either
	}{
		{name: "withheld", stdout: "key=absent",
			segment:  []string{"fetch https://[REDACTED]@h/x?X-Amz-Signature=[REDACTED]", "key=absent", "no newline ?sig=[REDACTED]"},
			hidden:   []string{"PW-seg-9999", "SIG-seg-9999", "SIG-tail-9999", "rk-secret-12345"},
			absentIn: "rk-secret-12345"},
		{name: "passed on", passEnv: []string{"--pass-env", "RUNPOD_API_KEY"}, stdout: "key=rk-secret-12345",
			segment: []string{"key=[REDACTED]"},
			hidden:  []string{"PW-seg-9999", "SIG-seg-9999", "rk-secret-12345"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"run", "--run", "r", "--store", "file://" + filepath.Join(dir, "store"),
				"--checkpoint-dir", filepath.Join(dir, "ckpt"), "--metrics-addr=", "--telemetry-interval=0"}, c.passEnv...)
			r := runBaton(t, map[string]string{"RUNPOD_API_KEY": "rk-secret-12345"}, append(args, "--", "sh", "-c", trainer)...)
			if r.code != 0 || !strings.Contains(r.stdout, c.stdout) {
				t.Fatalf("exit %d, stdout without %q\nstdout:\n%s\nstderr:\n%s", r.code, c.stdout, r.stdout, r.stderr)
			}
			if c.absentIn != "" && strings.Contains(r.stdout, c.absentIn) {
				t.Fatalf("the trainer saw %q:\n%s", c.absentIn, r.stdout)
			}
			logs, err := filepath.Glob(filepath.Join(dir, "store", "runs", "r", "logs", "*.log"))
			if err != nil || len(logs) != 1 {
				t.Fatalf("log segments %v, %v: want one", logs, err)
			}
			seg, err := os.ReadFile(logs[0])
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range c.segment {
				if !strings.Contains(string(seg), want) {
					t.Errorf("the segment lacks %q:\n%s", want, seg)
				}
			}
			if found := secretsIn(string(seg)+r.stderr, c.hidden...); found != nil {
				t.Fatalf("%q stored or logged:\nsegment:\n%s\nstderr:\n%s", found, seg, r.stderr)
			}
		})
	}
}
