package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/sync/file"
	"github.com/batonrun/baton/sync/file/filetest"
	"github.com/batonrun/baton/sync/storage"
)

// mapEnv is a getenv over a map.
func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// findCheck returns the check of the given name, failing the test if the
// report has none.
func findCheck(t *testing.T, r Report, name string) Check {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in %+v", name, r.Checks)
	return Check{}
}

// runDespiteHang runs the doctor on o, in which a step hangs, and fails the
// test unless Run returns within 5s: the step's timeout, far shorter, ends it.
func runDespiteHang(t *testing.T, o Options) Report {
	t.Helper()
	start := time.Now()
	r := Run(t.Context(), o)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
	return r
}

// fixedDisk is a DiskMeter that reports the same space for every directory.
func fixedDisk(space DiskSpace, err error) DiskMeter {
	return func(context.Context, string) (DiskSpace, error) { return space, err }
}

// baseOptions are options with nothing set but a valid file store config.
func baseOptions(t *testing.T, env map[string]string) Options {
	t.Helper()
	cfg, _, problem, err := LoadConfig(nil, mapEnv(env), nil)
	if err != nil {
		t.Fatal(err)
	}
	storeDir := t.TempDir()
	return Options{
		Version: "test", Host: "testhost", WorkDir: t.TempDir(),
		Config: cfg.Config, ConfigProblem: problem,
		Disk: fixedDisk(DiskSpace{TotalBytes: 100 << 30, FreeBytes: 50 << 30}, nil),
		OpenStore: func(context.Context, string) (storage.Store, error) {
			return file.New(storeDir) // whatever the URL says: tests never write outside their temporary dirs
		},
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	badYAML := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badYAML, []byte("store: file:///s\nkeep: many\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		args      []string
		env       map[string]string
		usage     string // a usage error that says this, or ""
		problem   string // the problem, or "" for none
		wantStore string // what the configuration still says of the store
	}{
		{name: "nothing set", problem: "--store: required", wantStore: ""},
		{name: "valid", env: map[string]string{"BATON_STORE": "file:///s", "BATON_RUN_ID": "r"}, wantStore: "file:///s"},
		{name: "bad variable, the rest still read", env: map[string]string{"BATON_STORE": "file:///s", "BATON_KEEP": "x"},
			problem: `BATON_KEEP="x": not an integer`, wantStore: "file:///s"},
		{name: "two bad variables, the first reported", env: map[string]string{"BATON_STORE": "file:///s", "BATON_KEEP": "x", "BATON_WORKERS": "y"},
			problem: `BATON_KEEP="x": not an integer`, wantStore: "file:///s"},
		{name: "bad line in the file", env: map[string]string{"BATON_CONFIG": badYAML, "BATON_STORE": "file:///e"},
			problem: badYAML + ":2: keep: \"many\": not an integer", wantStore: "file:///e"},
		{name: "invalid value from a variable", env: map[string]string{"BATON_STORE": "file:///s", "BATON_RUN_ID": "r", "BATON_WORKERS": "0"},
			problem: `BATON_WORKERS="0": want 1 to 1024`, wantStore: "file:///s"},
		{name: "bad flag is a usage error", args: []string{"--keep=x"}, usage: "--keep=x: not an integer"},
		{name: "invalid flag is a usage error", args: []string{"--workers", "0"}, env: map[string]string{"BATON_STORE": "file:///s", "BATON_RUN_ID": "r"}, usage: "--workers=0"},
		{name: "unknown flag is a usage error", args: []string{"--frob"}, usage: "--frob: unknown flag"},
		{name: "flags win over variables", args: []string{"--store", "file:///f", "--", "python", "x.py"},
			env: map[string]string{"BATON_STORE": "file:///s", "BATON_RUN_ID": "r"}, wantStore: "file:///f"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, _, problem, err := LoadConfig(c.args, mapEnv(c.env), nil)
			if c.usage != "" {
				if err == nil || !strings.Contains(err.Error(), c.usage) {
					t.Fatalf("err = %v, want a usage error saying %q", err, c.usage)
				}
				return
			}
			if err != nil {
				t.Fatalf("usage error %v", err)
			}
			if c.problem == "" && problem != nil || c.problem != "" && (problem == nil || !strings.Contains(problem.Error(), c.problem)) {
				t.Fatalf("problem = %v, want %q", problem, c.problem)
			}
			if cfg.Store != c.wantStore {
				t.Fatalf("store = %q, want %q", cfg.Store, c.wantStore)
			}
		})
	}
	if _, _, _, err := LoadConfig([]string{"-h"}, nil, nil); !errors.Is(err, config.ErrHelp) {
		t.Fatalf("-h: %v, want config.ErrHelp", err)
	}
}

func TestConfigCheck(t *testing.T) {
	cases := []struct {
		name     string
		env      map[string]string
		status   Status
		required bool
		reason   string
	}{
		{"valid", map[string]string{"BATON_STORE": "file:///s", "BATON_RUN_ID": "r1", "BATON_KEEP": "5"}, OK, true, "run r1: "},
		{"store and run not set yet", nil, Warn, false, "baton run: --store: required"},
		{"run not set", map[string]string{"BATON_STORE": "file:///s"}, Warn, false, "baton run: --run: required"},
		{"store missing and something else wrong", map[string]string{"BATON_RUN_ID": "r", "BATON_GRACE": "1h"}, Fail, true, "baton run: --store: required"},
		{"bad variable", map[string]string{"BATON_STORE": "file:///s", "BATON_RUN_ID": "r", "BATON_ON_EXIT": "reboot"}, Fail, true,
			`baton run: BATON_ON_EXIT="reboot": want none, stop or terminate`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := baseOptions(t, c.env)
			o.OpenStore = nil
			r := Run(t.Context(), o)
			got := findCheck(t, r, "config")
			if got.Status != c.status || got.Required != c.required || !strings.HasPrefix(got.Reason, c.reason) {
				t.Fatalf("config check = %+v, want %s (required %v) with a reason starting %q", got, c.status, c.required, c.reason)
			}
			if wantExit := map[bool]int{true: 1, false: 0}[c.status == Fail]; r.ExitCode != wantExit {
				t.Fatalf("exit code %d, want %d", r.ExitCode, wantExit)
			}
		})
	}
}

func TestConfigFactsRedactSecrets(t *testing.T) {
	o := baseOptions(t, map[string]string{"BATON_STORE": "file:///s", "BATON_RUN_ID": "r",
		"BATON_METRICS_TOKEN": "tok-very-secret", "BATON_METRICS_ADDR": "0.0.0.0:9400"})
	r := Run(t.Context(), o)
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "tok-very-secret") {
		t.Fatalf("the token was printed:\n%s", buf.String())
	}
	var found bool
	for _, s := range r.Config.Settings {
		if s.Name == "metrics-token" {
			found = s.Value == "[REDACTED]" && s.Source == "env" && s.Key == "BATON_METRICS_TOKEN"
		}
	}
	if !found {
		t.Fatalf("metrics-token not listed as redacted from env: %+v", r.Config.Settings)
	}
}

func TestDisks(t *testing.T) {
	const gib = 1 << 30
	cases := []struct {
		name   string
		space  DiskSpace
		err    error
		status Status
		reason string
	}{
		{"plenty", DiskSpace{TotalBytes: 100 * gib, FreeBytes: 50 * gib}, nil, OK, "50.0 GiB free of 100.0 GiB"},
		{"below --min-free-disk, the threshold as written", DiskSpace{TotalBytes: 100 * gib, FreeBytes: gib}, nil, Warn, ": 1.0 GiB free of 100.0 GiB, below --min-free-disk (2GiB)"},
		{"no inode left", DiskSpace{TotalBytes: 100 * gib, FreeBytes: 50 * gib, InodesTotal: 10, InodesFree: 0}, nil, Warn, "no free inode"},
		{"cannot measure", DiskSpace{}, errors.New("statfs: input/output error"), Warn, "cannot measure the disk: statfs: input/output error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := baseOptions(t, map[string]string{"BATON_STORE": "file:///s", "BATON_RUN_ID": "r", "BATON_CHECKPOINT_DIR": "ckpt/not/yet"})
			o.Disk = fixedDisk(c.space, c.err)
			r := Run(t.Context(), o)
			for _, name := range []string{"disk.checkpoint", "disk.workspace"} {
				got := findCheck(t, r, name)
				if got.Status != c.status || got.Required || !strings.Contains(got.Reason, c.reason) {
					t.Fatalf("%s = %+v, want %s with %q", name, got, c.status, c.reason)
				}
			}
			if !strings.Contains(findCheck(t, r, "disk.checkpoint").Reason, "(not created yet; measured "+o.WorkDir+")") {
				t.Fatalf("the checkpoint dir's reason does not say it was measured at its parent: %+v", r.Checks)
			}
			if r.ExitCode != 0 {
				t.Fatalf("a disk check made the report fail: %+v", r.Checks)
			}
			d := r.Disks[0]
			if d.Role != "checkpoint" || d.Dir != filepath.Join(o.WorkDir, "ckpt/not/yet") || d.Measured != o.WorkDir {
				t.Fatalf("checkpoint disk = %+v: want the dir under the working dir, measured at the working dir", d)
			}
		})
	}
}

func TestDiskMeterThatHangsTimesOut(t *testing.T) {
	defer func(d time.Duration) { diskTimeout = d }(diskTimeout)
	diskTimeout = 100 * time.Millisecond
	o := baseOptions(t, nil)
	o.Disk = func(ctx context.Context, _ string) (DiskSpace, error) {
		select {} // a hung network mount: ignores ctx
	}
	o.Timeout = time.Minute
	r := runDespiteHang(t, o)
	if got := findCheck(t, r, "disk.checkpoint"); got.Status != Warn || !strings.Contains(got.Reason, "no answer in 100ms") {
		t.Fatalf("disk.checkpoint = %+v", got)
	}
}

func TestRealDisk(t *testing.T) {
	o := baseOptions(t, nil)
	o.Disk = nil // HostDisk
	r := Run(t.Context(), o)
	d := r.Disks[1]
	if d.Error != "" || d.TotalBytes == 0 || d.FreeBytes > d.TotalBytes {
		t.Fatalf("workspace disk measured as %+v", d)
	}
}

// hookStore is a Store whose operations a test may replace one by one.
type hookStore struct {
	storage.Store
	put    func(ctx context.Context, key string, p storage.Payload, opts storage.PutOptions) (storage.ObjectInfo, error)
	get    func(ctx context.Context, key string, off, n int64) (io.ReadCloser, storage.ObjectInfo, error)
	list   func(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error
	delete func(ctx context.Context, key string) error
}

func (s *hookStore) Put(ctx context.Context, key string, p storage.Payload, opts storage.PutOptions) (storage.ObjectInfo, error) {
	if s.put != nil {
		return s.put(ctx, key, p, opts)
	}
	return s.Store.Put(ctx, key, p, opts)
}

func (s *hookStore) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, storage.ObjectInfo, error) {
	if s.get != nil {
		return s.get(ctx, key, off, n)
	}
	return s.Store.Get(ctx, key, off, n)
}

func (s *hookStore) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if s.list != nil {
		return s.list(ctx, prefix, fn)
	}
	return s.Store.List(ctx, prefix, fn)
}

func (s *hookStore) Delete(ctx context.Context, key string) error {
	if s.delete != nil {
		return s.delete(ctx, key)
	}
	return s.Store.Delete(ctx, key)
}

func TestStoreRoundTrip(t *testing.T) {
	fail := func(kind error) func(ctx context.Context, key string, p storage.Payload, opts storage.PutOptions) (storage.ObjectInfo, error) {
		return func(ctx context.Context, key string, p storage.Payload, opts storage.PutOptions) (storage.ObjectInfo, error) {
			return storage.ObjectInfo{}, &storage.Error{Op: "put", Key: key, Kind: kind, Err: errors.New("provider said no")}
		}
	}
	cases := []struct {
		name   string
		hook   func(s *hookStore)
		status Status
		reason string // in the check's reason
		step   string // the failed step
		kind   string
	}{
		{name: "file store", status: OK, reason: "writable, create-only writes enforced (put "},
		{name: "credentials rejected", hook: func(s *hookStore) { s.put = fail(storage.ErrAuth) },
			status: Fail, reason: "put_if_absent: credentials rejected", step: StepPut, kind: "credentials"},
		{name: "permission denied", hook: func(s *hookStore) { s.put = fail(storage.ErrPermission) },
			status: Fail, reason: "put_if_absent: permission denied", step: StepPut, kind: "permission"},
		{name: "no bucket", hook: func(s *hookStore) { s.put = fail(storage.ErrNoBucket) },
			status: Fail, reason: "put_if_absent: the bucket does not exist", step: StepPut, kind: "no_bucket"},
		{name: "unreachable", hook: func(s *hookStore) { s.put = fail(storage.ErrUnreachable) },
			status: Fail, reason: "put_if_absent: endpoint unreachable", step: StepPut, kind: "unreachable"},
		{name: "create-only not enforced", hook: func(s *hookStore) {
			inner := s.Store
			s.put = func(ctx context.Context, key string, p storage.Payload, opts storage.PutOptions) (storage.ObjectInfo, error) {
				return inner.Put(ctx, key, p, storage.PutOptions{}) // drops If-None-Match
			}
		}, status: Fail, reason: "put_if_absent_again: the store accepted a second create-only write", step: StepPutAgain, kind: "not_enforced"},
		{name: "read back differs", hook: func(s *hookStore) {
			s.get = func(context.Context, string, int64, int64) (io.ReadCloser, storage.ObjectInfo, error) {
				return io.NopCloser(strings.NewReader("something else")), storage.ObjectInfo{}, nil
			}
		}, status: Fail, reason: "get: the object read back differs", step: StepGet, kind: "mismatch"},
		{name: "listing misses it", hook: func(s *hookStore) {
			s.list = func(context.Context, string, func(storage.ObjectInfo) error) error { return nil }
		}, status: Fail, reason: "list: a listing does not show", step: StepList, kind: "not_listed"},
		{name: "delete denied", hook: func(s *hookStore) {
			s.delete = func(ctx context.Context, key string) error {
				return &storage.Error{Op: "delete", Key: key, Kind: storage.ErrPermission}
			}
		}, status: Fail, reason: "delete: permission denied", step: StepDelete, kind: "permission"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			o := baseOptions(t, map[string]string{"BATON_STORE": "file://" + root, "BATON_RUN_ID": "r"})
			inner := filetest.Open(t, root)
			s := &hookStore{Store: inner}
			if c.hook != nil {
				c.hook(s)
			}
			o.OpenStore = func(context.Context, string) (storage.Store, error) { return s, nil }
			o.StoreRetry = storage.Retry{Attempts: 2, Base: time.Millisecond, Max: time.Millisecond}
			r := Run(t.Context(), o)
			got := findCheck(t, r, "store")
			if got.Status != c.status || !got.Required || !strings.Contains(got.Reason, c.reason) {
				t.Fatalf("store = %+v, want %s with %q", got, c.status, c.reason)
			}
			if wantExit := map[Status]int{OK: 0, Fail: 1}[c.status]; r.ExitCode != wantExit {
				t.Fatalf("exit code %d, want %d", r.ExitCode, wantExit)
			}
			if r.Store == nil || !strings.HasPrefix(r.Store.Key, ProbePrefix+"testhost-") {
				t.Fatalf("store facts %+v: want a probe key under %s naming the host", r.Store, ProbePrefix)
			}
			if c.status == OK {
				var ops []string
				for _, s := range r.Store.Steps {
					ops = append(ops, s.Op)
				}
				if want := []string{StepOpen, StepPut, StepPutAgain, StepGet, StepList, StepDelete}; strings.Join(ops, ",") != strings.Join(want, ",") {
					t.Fatalf("steps %v, want %v", ops, want)
				}
			} else {
				var failed *StoreStep
				for i := range r.Store.Steps {
					if r.Store.Steps[i].Status == Fail {
						failed = &r.Store.Steps[i]
						break
					}
				}
				if failed == nil || failed.Op != c.step || failed.Kind != c.kind {
					t.Fatalf("first failed step %+v, want %s with kind %s", failed, c.step, c.kind)
				}
			}
			if c.name != "delete denied" { // nothing may be left behind
				if err := inner.List(t.Context(), ProbePrefix, func(info storage.ObjectInfo) error {
					return errors.New("left behind: " + info.Key)
				}); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestStoreNotSet(t *testing.T) {
	o := baseOptions(t, nil)
	r := Run(t.Context(), o)
	if got := findCheck(t, r, "store"); got.Status != Warn || got.Required || r.Store != nil {
		t.Fatalf("store = %+v, facts %+v: want a warning and no facts", got, r.Store)
	}
}

func TestStoreThatHangsTimesOut(t *testing.T) {
	defer func(d time.Duration) { stepTimeout = d }(stepTimeout)
	stepTimeout = 200 * time.Millisecond
	o := baseOptions(t, map[string]string{"BATON_STORE": "file:///unused", "BATON_RUN_ID": "r"})
	deleted := make(chan struct{}, 1)
	s := &hookStore{
		put: func(ctx context.Context, _ string, _ storage.Payload, _ storage.PutOptions) (storage.ObjectInfo, error) {
			<-ctx.Done()
			return storage.ObjectInfo{}, ctx.Err()
		},
		delete: func(context.Context, string) error { deleted <- struct{}{}; return nil },
	}
	o.OpenStore = func(context.Context, string) (storage.Store, error) { return s, nil }
	r := runDespiteHang(t, o)
	got := findCheck(t, r, "store")
	if got.Status != Fail || !strings.Contains(got.Reason, "put_if_absent: endpoint unreachable: no answer within 2") {
		t.Fatalf("store = %+v", got)
	}
	select {
	case <-deleted:
	default:
		t.Fatal("a put that timed out may have written the probe: it was not cleaned up")
	}
}

func TestJSONRoundTrip(t *testing.T) {
	root := t.TempDir()
	o := baseOptions(t, map[string]string{"BATON_STORE": "file://" + root, "BATON_RUN_ID": "r"})
	o.Environ = []string{"RUNPOD_POD_ID=pod1", "RUNPOD_GPU_COUNT=2", "RUNPOD_TCP_PORT_22=10022"}
	r := Run(t.Context(), o)
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if back.Schema != Schema || back.Status != r.Status || len(back.Checks) != len(r.Checks) ||
		back.Platform.Platform != "runpod" || back.Platform.Ports[22] != 10022 || back.Store == nil || len(back.Store.Steps) != 6 ||
		back.Config.RunID != "r" || len(back.Disks) != 2 {
		t.Fatalf("read back %+v\nfrom %s", back, buf.String())
	}
	// The documented top-level fields, and nothing else.
	var top map[string]json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &top); err != nil {
		t.Fatal(err)
	}
	want := []string{"schema", "version", "time", "status", "exit_code", "checks", "platform", "config", "gpu", "disks", "store"}
	for _, k := range want {
		if _, ok := top[k]; !ok {
			t.Errorf("no %q in the JSON", k)
		}
	}
	if len(top) != len(want) {
		t.Errorf("JSON has %d top-level fields, want %d: %s", len(top), len(want), buf.String())
	}
}

func TestText(t *testing.T) {
	o := baseOptions(t, map[string]string{"BATON_STORE": "s3://bucket/p", "BATON_RUN_ID": "r"})
	o.OpenStore = func(context.Context, string) (storage.Store, error) {
		return nil, &storage.Error{Op: "open", Kind: storage.ErrAuth, Err: errors.New("no credentials")}
	}
	r := Run(t.Context(), o)
	for _, color := range []bool{false, true} {
		var buf bytes.Buffer
		if err := r.WriteText(&buf, color); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		if got := strings.Contains(out, "\x1b["); got != color {
			t.Fatalf("color=%v but escape codes present=%v:\n%s", color, got, out)
		}
		if color {
			continue
		}
		// The reasons start in one column.
		col := -1
		for _, line := range strings.Split(out, "\n") {
			for _, s := range []string{"  ok    ", "  warn  ", "  fail  "} {
				if i := strings.Index(line, s); i >= 0 {
					if col >= 0 && i != col {
						t.Fatalf("statuses not aligned:\n%s", out)
					}
					col = i
				}
			}
		}
		for _, want := range []string{
			"store            fail  s3://bucket/p: open: credentials rejected",
			"-> check AWS_ACCESS_KEY_ID",
			"baton cannot run here as configured (required: store); exit status 1",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in:\n%s", want, out)
			}
		}
	}
}

func TestProbeKey(t *testing.T) {
	a, b := probeKey("my host/../x"), probeKey("my host/../x")
	if a == b {
		t.Fatal("two probe keys are the same")
	}
	if err := storage.CheckKey(a); err != nil || !strings.HasPrefix(a, ProbePrefix+"my_host_.._x-") {
		t.Fatalf("probe key %q: %v", a, err)
	}
}

func TestRedactReachesEveryText(t *testing.T) {
	const secret = "s3cr3t-value-42"
	o := baseOptions(t, map[string]string{"BATON_STORE": "file:///x?" + secret, "BATON_RUN_ID": "r"})
	o.Redact = func(s string) string { return strings.ReplaceAll(s, secret, "[REDACTED]") }
	o.OpenStore = func(context.Context, string) (storage.Store, error) {
		return &hookStore{put: func(ctx context.Context, key string, _ storage.Payload, _ storage.PutOptions) (storage.ObjectInfo, error) {
			return storage.ObjectInfo{}, &storage.Error{Op: "put", Key: key, Kind: storage.ErrIO, Err: errors.New("server echoed " + secret)}
		}}, nil
	}
	o.Disk = fixedDisk(DiskSpace{}, errors.New("mount says "+secret))
	r := Run(t.Context(), o)
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteText(&buf, false); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), secret) {
		t.Fatalf("the secret was printed:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), "server echoed [REDACTED]") {
		t.Fatalf("the store's error is missing:\n%s", buf.String())
	}
}

// TestNotifyURLsNotShown: a webhook URL's token (in its path) never reaches
// doctor's settings listing; the host does.
func TestNotifyURLsNotShown(t *testing.T) {
	const token = "T0000/B0000/XXXXsecretXXXX"
	cfg, _, err := config.Load([]string{"--store", "file:///tmp/x", "--run", "r", "--notify", "https://hooks.slack.com/services/" + token}, func(string) string { return "" }, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	var shown string
	for _, f := range settingFacts(cfg) {
		if f.Name == "notify" {
			shown = f.Value
		}
	}
	if shown != "https://hooks.slack.com/..." {
		t.Fatalf("notify shown as %q, want the host only", shown)
	}
}
