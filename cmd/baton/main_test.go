package main

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonrun/baton/internal/s3test"
)

// result is what one in-process run of baton printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

// runBaton runs baton's main logic in-process. environ is set in the real
// process environment for the duration of the test (the S3 SDKs read their
// credential chain from it), so tests that call it do not run in parallel.
func runBaton(t *testing.T, environ map[string]string, args ...string) result {
	t.Helper()
	for k, v := range environ {
		t.Setenv(k, v)
	}
	var out, errb bytes.Buffer
	e := env{stdout: &out, stderr: &errb, getenv: os.Getenv, environ: os.Environ()}
	code := run(t.Context(), e, args)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// withEnv returns a copy of base with the variables of kv (name, value, name,
// value...) set: an environment for runBaton or startBaton.
func withEnv(base map[string]string, kv ...string) map[string]string {
	m := maps.Clone(base)
	if m == nil {
		m = map[string]string{}
	}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestVersion(t *testing.T) {
	r := runBaton(t, nil, "version")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "baton ") {
		t.Fatalf("version: %+v", r)
	}
}

func TestUsageErrorsExit2WithOneLineNamingTheKey(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name    string
		environ map[string]string
		args    []string
		want    string // in the last line of stderr
	}{
		{"no command", nil, nil, "Usage"},
		{"unknown command", nil, []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"missing argument", nil, []string{"pull", "file:///x"}, "want SRC and DIR"},
		{"bad flag value", nil, []string{"pull", "--workers=0", "file:///x", dir}, "--workers=0"},
		{"bad env value", map[string]string{"BATON_WORKERS": "many"}, []string{"pull", "file:///x", dir}, "BATON_WORKERS"},
		{"part size too small", nil, []string{"push", "--part-size=1MiB", dir, "file:///x"}, "--part-size"},
		{"bad driver", map[string]string{"BATON_S3_DRIVER": "gcs"}, []string{"pull", "s3://bucket/x", dir}, `BATON_S3_DRIVER="gcs": want aws or minio`},
		{"unknown scheme", nil, []string{"pull", "gs://bucket/x", dir}, `unknown scheme "gs"`},
		{"bad bucket", nil, []string{"pull", "s3://Bad_Bucket/x", dir}, "not a valid bucket name"},
		{"unknown URL parameter", nil, []string{"pull", "s3://bucket/x?colour=red", dir}, `unknown parameter "colour"`},
		{"relative file URL", nil, []string{"pull", "file://relative/path", dir}, "absolute path"},
		{"push of a missing dir", nil, []string{"push", filepath.Join(dir, "nope"), "file:///x"}, "is not a directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runBaton(t, c.environ, c.args...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", r.code, exitUsage, r.stderr)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if last := lines[len(lines)-1]; !strings.Contains(last, c.want) && !strings.Contains(r.stderr, c.want) {
				t.Fatalf("stderr does not say %q:\n%s", c.want, r.stderr)
			}
		})
	}
}

func TestCredentialsInURLAreRefusedAndNotPrinted(t *testing.T) {
	r := runBaton(t, nil, "pull", "s3://AKIAEXAMPLE:sup3rs3cretvalue@bucket/x", t.TempDir())
	if r.code != exitUsage {
		t.Fatalf("exit %d, want %d", r.code, exitUsage)
	}
	if strings.Contains(r.stderr+r.stdout, "sup3rs3cretvalue") {
		t.Fatalf("the secret was printed:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "credentials do not belong in the URL") {
		t.Fatalf("no clear message:\n%s", r.stderr)
	}
}

func TestPushPullFileStore(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "sub dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"a.txt": "alpha", "sub dir/b.bin": strings.Repeat("b", 100_000)} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	store := "file://" + t.TempDir()
	if r := runBaton(t, nil, "push", "--progress=none", src, store); r.code != 0 || !strings.HasPrefix(r.stdout, "pushed 2 files") {
		t.Fatalf("push: %+v", r)
	}
	if r := runBaton(t, nil, "pull", "--progress=log", store, dst); r.code != 0 || !strings.HasPrefix(r.stdout, "pulled 2 files") {
		t.Fatalf("pull: %+v", r)
	}
	if got, err := os.ReadFile(filepath.Join(dst, "sub dir/b.bin")); err != nil || len(got) != 100_000 {
		t.Fatalf("pulled file: %d bytes, %v", len(got), err)
	}
	r := runBaton(t, nil, "pull", "--progress=none", store, dst)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "pulled 0 files") || !strings.Contains(r.stdout, "2 files (97.7 KiB) already up to date") {
		t.Fatalf("second pull: %+v", r)
	}
}

// TestStorageErrorsSayWhich checks that each way of failing to reach a bucket
// exits 1 with one line that names the cause and prints no secret.
func TestStorageErrorsSayWhich(t *testing.T) {
	srv := s3test.Start(t, s3test.Versitygw, s3test.Users())
	bucket := srv.NewBucket(t)
	userKey, userSecret := srv.NewUser(t) // owns nothing, so root's bucket is off limits
	otherUser := map[string]string{"AWS_ACCESS_KEY_ID": userKey, "AWS_SECRET_ACCESS_KEY": userSecret, "AWS_REGION": srv.Region}
	good := map[string]string{"AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey, "AWS_REGION": srv.Region}
	wrongSecret := map[string]string{"AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": "wrong-secret-value-123", "AWS_REGION": srv.Region}
	unknownKey := map[string]string{"AWS_ACCESS_KEY_ID": "NOSUCHKEY123", "AWS_SECRET_ACCESS_KEY": srv.SecretKey, "AWS_REGION": srv.Region}
	cases := []struct {
		name    string
		environ map[string]string
		url     string
		want    string
	}{
		{"missing bucket", good, "s3://no-such-bucket/x?endpoint=" + srv.Endpoint, "bucket does not exist"},
		{"wrong secret", wrongSecret, "s3://" + bucket + "/x?endpoint=" + srv.Endpoint, "credentials rejected"},
		{"unknown access key", unknownKey, "s3://" + bucket + "/x?endpoint=" + srv.Endpoint, "credentials rejected"},
		{"permission denied", otherUser, "s3://" + bucket + "/x?endpoint=" + srv.Endpoint, "permission denied"},
		{"unreachable endpoint", good, "s3://" + bucket + "/x?endpoint=http://127.0.0.1:1", "endpoint unreachable"},
	}
	for _, driver := range []string{"aws", "minio"} {
		for _, c := range cases {
			t.Run(driver+"/"+c.name, func(t *testing.T) {
				environ := map[string]string{"BATON_S3_DRIVER": driver}
				for k, v := range c.environ {
					environ[k] = v
				}
				r := runBaton(t, environ, "pull", "--progress=none", c.url, t.TempDir())
				if r.code != exitFailure {
					t.Fatalf("exit %d, want %d:\n%s", r.code, exitFailure, r.stderr)
				}
				lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
				if len(lines) != 1 || !strings.Contains(lines[0], c.want) {
					t.Fatalf("stderr should be one line saying %q:\n%s", c.want, r.stderr)
				}
				for _, secret := range []string{srv.SecretKey, userSecret, "wrong-secret-value-123"} {
					if strings.Contains(r.stderr+r.stdout, secret) {
						t.Fatalf("a secret was printed:\n%s", r.stderr)
					}
				}
			})
		}
	}
}

// TestPushPullS3 runs the two commands against a real server with each driver.
func TestPushPullS3(t *testing.T) {
	srv := s3test.Start(t, s3test.MinIO)
	bucket := srv.NewBucket(t)
	environ := map[string]string{"AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey, "AWS_ENDPOINT_URL_S3": srv.Endpoint}
	src := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), 12<<20/16) // 12 MiB: 3 parts of 5 MiB
	if err := os.WriteFile(filepath.Join(src, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "small.txt"), []byte("small"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, driver := range []string{"aws", "minio"} {
		t.Run(driver, func(t *testing.T) {
			url := "s3://" + bucket + "/" + driver + "?driver=" + driver
			if r := runBaton(t, environ, "push", "--progress=none", "--part-size=5MiB", src, url); r.code != 0 {
				t.Fatalf("push: %+v", r)
			}
			dst := t.TempDir()
			if r := runBaton(t, environ, "pull", "--progress=none", "--part-size=5MiB", url, dst); r.code != 0 || !strings.HasPrefix(r.stdout, "pulled 2 files") {
				t.Fatalf("pull: %+v", r)
			}
			got, err := os.ReadFile(filepath.Join(dst, "big.bin"))
			if err != nil || !bytes.Equal(got, big) {
				t.Fatalf("big.bin came back different (%d bytes, %v)", len(got), err)
			}
			if r := runBaton(t, environ, "pull", "--progress=none", url, dst); r.code != 0 || !strings.HasPrefix(r.stdout, "pulled 0 files") {
				t.Fatalf("second pull: %+v", r)
			}
		})
	}
}

// TestSharedProfileCredentials takes the credentials from a named profile of
// a shared credentials file, with no AWS_ACCESS_KEY_ID in the environment.
func TestSharedProfileCredentials(t *testing.T) {
	srv := s3test.Start(t, s3test.Versitygw)
	bucket := srv.NewBucket(t)
	creds := filepath.Join(t.TempDir(), "credentials")
	profile := "[default]\naws_access_key_id = WRONGKEY\naws_secret_access_key = wrongsecret\n\n" +
		"[training]\naws_access_key_id = " + srv.AccessKey + "\naws_secret_access_key = " + srv.SecretKey + "\n"
	if err := os.WriteFile(creds, []byte(profile), 0o600); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("via a profile"), 0o644); err != nil {
		t.Fatal(err)
	}
	environ := map[string]string{
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
		"AWS_SHARED_CREDENTIALS_FILE": creds, "AWS_CONFIG_FILE": filepath.Join(t.TempDir(), "none"),
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": srv.Region,
	}
	for _, driver := range []string{"aws", "minio"} {
		t.Run(driver, func(t *testing.T) {
			url := "s3://" + bucket + "/" + driver + "?profile=training&driver=" + driver + "&endpoint=" + srv.Endpoint
			if r := runBaton(t, environ, "push", "--progress=none", src, url); r.code != 0 {
				t.Fatalf("push with profile credentials: %+v", r)
			}
			// The default profile holds wrong credentials: without
			// profile= the same push is refused.
			bad := strings.Replace(url, "profile=training&", "", 1)
			if r := runBaton(t, environ, "push", "--progress=none", src, bad); r.code != exitFailure || !strings.Contains(r.stderr, "credentials rejected") {
				t.Fatalf("push with the default profile's wrong credentials: %+v", r)
			}
		})
	}
}
