package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonrun/baton/agent/doctor"
	"github.com/batonrun/baton/internal/buildflags"
	"github.com/batonrun/baton/internal/s3test"
)

var (
	batonBinOnce sync.Once
	batonBin     string
	batonBinErr  error
)

// TestMain removes the binary batonBinary built.
func TestMain(m *testing.M) {
	code := m.Run()
	if batonBin != "" {
		os.RemoveAll(filepath.Dir(batonBin))
	}
	os.Exit(code)
}

// batonBinary builds cmd/baton once per test run, as users build it (cgo,
// lazy binding for NVML), and returns its path.
func batonBinary(t *testing.T) string {
	t.Helper()
	batonBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "baton-doctor-test")
		if err != nil {
			batonBinErr = err
			return
		}
		batonBin = filepath.Join(dir, "baton")
		batonBinErr = buildflags.Build(batonBin)
	})
	if batonBinErr != nil {
		t.Fatal(batonBinErr)
	}
	return batonBin
}

// execDoctor runs "baton doctor ARGS" as its own process in dir, with the
// test's environment stripped of anything that configures baton, a platform
// or AWS, plus extra.
func execDoctor(t *testing.T, dir string, extra map[string]string, args ...string) result {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "BATON_") || strings.HasPrefix(name, "AWS_") || strings.HasPrefix(name, "RUNPOD_") ||
			strings.HasPrefix(name, "VAST_") || name == "CONTAINER_ID" || name == "CONTAINER_API_KEY" || name == "KUBERNETES_SERVICE_HOST" {
			continue
		}
		env = append(env, kv)
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	cmd := exec.Command(batonBinary(t), append([]string{"doctor"}, args...)...)
	cmd.Dir, cmd.Env = dir, env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func TestDoctorExitStatus(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "a-file")
	if err := os.WriteFile(blocker, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := map[string]string{"BATON_STORE": "file://" + filepath.Join(dir, "store"), "BATON_RUN_ID": "r1"}
	cases := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want []string // in stdout (exit 0 or 1) or stderr (exit 2)
	}{
		{"nothing configured", nil, nil, exitOK, []string{"config           warn  baton run: --store: required", "store            warn  no store set"}},
		{"file store", good, nil, exitOK, []string{"store            ok    file://", "nothing required is broken"}},
		{"run's flags, as baton run reads them", nil,
			[]string{"--store", good["BATON_STORE"], "--run", "r2", "--checkpoint-dir", "ck", "--detach", "--", "python", "train.py"},
			exitOK, []string{"config           ok    run r2: " + filepath.Join(dir, "ck") + " committed every 10m"}},
		{"store not writable", withEnv(good, "BATON_STORE", "file://"+filepath.Join(blocker, "store")), nil, exitFailure,
			[]string{"store            fail  file://" + blocker + "/store: put_if_absent:", "(required: store); exit status 1"}},
		{"a bad variable, as baton run prints it", withEnv(good, "BATON_KEEP", "x"), nil, exitFailure,
			[]string{`config           fail  baton run: BATON_KEEP="x": not an integer`, "store            ok"}},
		{"a misspelt variable warns", withEnv(good, "BATON_CHEKPOINT_DIR", "/w"), nil, exitOK,
			[]string{"config           warn", "BATON_CHEKPOINT_DIR is set but no baton command reads it; did you mean BATON_CHECKPOINT_DIR?"}},
		{"low disk warns only", withEnv(good, "BATON_MIN_FREE_DISK", "1000000GiB"), nil, exitOK,
			[]string{"below --min-free-disk (1000000GiB)"}},
		{"bad flag of baton run", good, []string{"--keep=x"}, exitUsage, []string{"baton doctor: --keep=x: not an integer"}},
		{"unknown flag", good, []string{"--frob"}, exitUsage, []string{"baton doctor: --frob: unknown flag"}},
		{"bad timeout", good, []string{"--timeout=0s"}, exitUsage, []string{"--timeout=0s: want a positive duration"}},
		{"--timeout is a flag alone: BATON_TIMEOUT is not read", withEnv(good, "BATON_TIMEOUT", "soon"), nil, exitOK, []string{"nothing required is broken"}},
		{"help", nil, []string{"-h"}, exitOK, []string{"Usage: baton doctor", "--require-gpu", "Exit status: 0 when nothing required is broken"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := execDoctor(t, dir, c.env, c.args...)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, c.code, r.stdout, r.stderr)
			}
			out := r.stdout
			if c.code == exitUsage {
				out = r.stderr
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in:\n%s", w, out)
				}
			}
			if strings.Contains(r.stdout, "\x1b[") {
				t.Errorf("colour codes on a pipe:\n%s", r.stdout)
			}
		})
	}
}

func TestDoctorJSON(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"BATON_STORE": "file://" + filepath.Join(dir, "store"), "BATON_RUN_ID": "r1",
		"RUNPOD_POD_ID": "pod-7", "RUNPOD_TCP_PORT_22": "10022", "BATON_METRICS_TOKEN": "tok-secret-123"}
	r := execDoctor(t, dir, env, "--json")
	if r.code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var rep doctor.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	if rep.Schema != doctor.Schema || rep.ExitCode != 0 || rep.Platform.Platform != "runpod" || rep.Platform.InstanceID != "pod-7" ||
		rep.Store == nil || rep.Store.Steps[len(rep.Store.Steps)-1].Op != doctor.StepDelete || rep.Config.RunID != "r1" {
		t.Fatalf("report %+v", rep)
	}
	if strings.Contains(r.stdout, "tok-secret-123") {
		t.Fatal("a secret was printed")
	}
	for _, c := range rep.Checks {
		if c.Status != doctor.OK && c.Status != doctor.Warn && c.Status != doctor.Fail || c.Reason == "" {
			t.Fatalf("check %+v", c)
		}
	}
}

// TestDoctorGPU runs the real NVML binding: on a machine without a driver
// the GPU line warns, and fails with --require-gpu; on a GPU machine it
// names the GPUs.
func TestDoctorGPU(t *testing.T) {
	for _, require := range []bool{false, true} {
		args := []string{"--json"}
		if require {
			args = append(args, "--require-gpu")
		}
		r := execDoctor(t, t.TempDir(), nil, args...)
		var rep doctor.Report
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("not JSON: %v\n%s\n%s", err, r.stdout, r.stderr)
		}
		var g doctor.Check
		for _, c := range rep.Checks {
			if c.Name == "gpu" {
				g = c
			}
		}
		if g.Required != require {
			t.Fatalf("--require-gpu=%v: gpu check %+v", require, g)
		}
		if rep.GPU == nil { // no driver here
			wantStatus, wantCode := doctor.Warn, exitOK
			if require {
				wantStatus, wantCode = doctor.Fail, exitFailure
			}
			if g.Status != wantStatus || g.Reason != "no NVIDIA driver: GPU telemetry off" || r.code != wantCode {
				t.Fatalf("--require-gpu=%v: exit %d, gpu check %+v", require, r.code, g)
			}
			continue
		}
		t.Logf("NVML: driver %s, CUDA %s, %d GPUs: %s", rep.GPU.Driver, rep.GPU.CUDA, len(rep.GPU.Devices), g.Reason)
		if len(rep.GPU.Devices) == 0 || !strings.Contains(g.Reason, "driver "+rep.GPU.Driver) {
			t.Fatalf("gpu check %+v, facts %+v", g, rep.GPU)
		}
	}
}

// TestDoctorS3 opens the store from the URL and the AWS_* variables, as a
// user does, against versitygw.
func TestDoctorS3(t *testing.T) {
	srv := s3test.Start(t, s3test.Versitygw, s3test.Users())
	bucket := srv.NewBucket(t)
	userKey, userSecret := srv.NewUser(t)
	url := "s3://" + bucket + "/ckpt?endpoint=" + srv.Endpoint
	root := map[string]string{"AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey, "AWS_REGION": srv.Region,
		"BATON_RUN_ID": "r"}
	user := map[string]string{"AWS_ACCESS_KEY_ID": userKey, "AWS_SECRET_ACCESS_KEY": userSecret, "AWS_REGION": srv.Region,
		"BATON_RUN_ID": "r"}
	cases := []struct {
		name    string
		env     map[string]string
		store   string
		code    int
		want    string
		fastest time.Duration
	}{
		{"root", root, url, exitOK, "writable, create-only writes enforced", 0},
		{"user without permission", user, url, exitFailure, "put_if_absent: permission denied", 0},
		{"wrong endpoint", root, "s3://" + bucket + "/ckpt?endpoint=http://127.0.0.1:1", exitFailure, "put_if_absent: endpoint unreachable", 10 * time.Second},
	}
	for _, driver := range []string{"aws", "minio"} {
		for _, c := range cases {
			t.Run(driver+"/"+c.name, func(t *testing.T) {
				env := map[string]string{"BATON_STORE": c.store, "BATON_S3_DRIVER": driver}
				for k, v := range c.env {
					env[k] = v
				}
				start := time.Now()
				r := execDoctor(t, t.TempDir(), env)
				if r.code != c.code || !strings.Contains(r.stdout, c.want) {
					t.Fatalf("exit %d (want %d), want %q in:\n%s\n%s", r.code, c.code, c.want, r.stdout, r.stderr)
				}
				if c.fastest > 0 && time.Since(start) > c.fastest {
					t.Fatalf("took %s", time.Since(start))
				}
				for _, secret := range []string{srv.SecretKey, userSecret} {
					if strings.Contains(r.stdout+r.stderr, secret) {
						t.Fatal("a secret was printed")
					}
				}
			})
		}
	}
}
