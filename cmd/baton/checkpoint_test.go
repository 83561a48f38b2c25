package main

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/s3test"
	"github.com/batonrun/baton/sync/file/filetest"
)

// randomData returns n reproducible pseudo-random bytes.
func randomData(seed byte, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// writeTree writes files (slash paths relative to dir) with mtime, so that
// a rewrite with the same size is never mistaken for an unchanged file
// because the clock did not tick.
func writeTree(t *testing.T, dir string, files map[string][]byte, mtime time.Time) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

// readTree returns every regular file under dir by slash path, and its mode.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = fi.Mode().String() + " " + string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, got, want string) {
	t.Helper()
	g, w := readTree(t, got), readTree(t, want)
	if len(g) != len(w) {
		t.Fatalf("%s holds %d files, %s holds %d", got, len(g), want, len(w))
	}
	for name, content := range w {
		if g[name] != content {
			t.Fatalf("%s differs between %s and %s", name, got, want)
		}
	}
}

// checkpointEnv is the environment of a test: the store and run come from
// BATON_STORE and BATON_RUN_ID, as the agent will hand them to a trainer.
func checkpointEnv(store, run string) map[string]string {
	return map[string]string{"BATON_STORE": store, "BATON_RUN_ID": run, "BATON_HOLDER": "", "BATON_CHUNK_SIZE": ""}
}

func mustRun(t *testing.T, environ map[string]string, args ...string) string {
	t.Helper()
	r := runBaton(t, environ, args...)
	if r.code != exitOK {
		t.Fatalf("baton %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func listJSON(t *testing.T, environ map[string]string) []checkpoint.Summary {
	t.Helper()
	var list []checkpoint.Summary
	out := mustRun(t, environ, "checkpoint", "ls", "--json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("ls --json is not a list of summaries: %v\n%s", err, out)
	}
	return list
}

// TestCheckpointCommitListRestoreGC walks one run through the commands on a
// file store: commit, list, commit with nothing new, restore, a commit that
// replaces a file, retention and chunk GC.
func TestCheckpointCommitListRestoreGC(t *testing.T) {
	environ := checkpointEnv("file://"+t.TempDir(), "run-1")
	src := t.TempDir()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	writeTree(t, src, map[string][]byte{
		"model.safetensors": randomData(1, 300<<10), // 5 chunks of 64 KiB, the last short
		"optimizer.pt":      randomData(2, 256<<10), // 4 chunks
		"sub/config.json":   []byte(`{"step": 100}`),
	}, t0)
	const chunk = "--chunk-size=64KiB"

	out := mustRun(t, environ, "checkpoint", "commit", chunk, "--meta", "step=100", "--meta", "note=first", src)
	if want := "committed checkpoint 1 of run run-1: 3 files, 556.0 KiB, 556.0 KiB new, in "; !strings.HasPrefix(out, want) {
		t.Fatalf("first commit printed %q, want it to start with %q", out, want)
	}
	ls := mustRun(t, environ, "checkpoint", "ls")
	if lines := strings.Split(strings.TrimSpace(ls), "\n"); len(lines) != 2 ||
		!regexp.MustCompile(`^1 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +\S+ +- +3 +556\.0 KiB +556\.0 KiB +latest$`).MatchString(lines[1]) {
		t.Fatalf("ls after one commit:\n%s", ls)
	}

	out = mustRun(t, environ, "checkpoint", "commit", chunk, src)
	if !strings.HasPrefix(out, "committed checkpoint 2 of run run-1: 3 files, 556.0 KiB, 0 B new, in ") {
		t.Fatalf("a commit with nothing new printed %q", out)
	}
	list := listJSON(t, environ)
	if len(list) != 2 || list[0].Seq != 1 || list[0].NewBytes != 556<<10+13 || list[0].Latest ||
		list[1].Seq != 2 || list[1].NewBytes != 0 || !list[1].Latest || list[1].Files != 3 || list[1].Size != 556<<10+13 {
		t.Fatalf("ls --json after two commits: %+v", list)
	}

	var m checkpoint.Manifest
	if err := json.Unmarshal([]byte(mustRun(t, environ, "checkpoint", "show", "--json", "1")), &m); err != nil {
		t.Fatal(err)
	}
	if m.Seq != 1 || m.Meta["step"] != "100" || m.Meta["note"] != "first" || len(m.Files) != 3 || len(m.Files[0].Chunks) != 5 {
		t.Fatalf("show --json 1: %+v", m)
	}
	show := mustRun(t, environ, "checkpoint", "show")
	for _, want := range []string{"seq       2\n", "parent    1\n", "64.0 KiB, blake3-256", "model.safetensors  300.0 KiB  5       -rw-r-----"} {
		if !strings.Contains(show, want) {
			t.Fatalf("show does not say %q:\n%s", want, show)
		}
	}

	restored := filepath.Join(t.TempDir(), "restored")
	out = mustRun(t, environ, "checkpoint", "restore", restored)
	if !strings.HasPrefix(out, "restored checkpoint 2 of run run-1 into "+restored+": 3 files, 556.0 KiB, in ") {
		t.Fatalf("restore printed %q", out)
	}
	sameTree(t, restored, src)

	// The optimizer is rewritten whole; the model keeps its chunks.
	writeTree(t, src, map[string][]byte{"optimizer.pt": randomData(3, 256<<10)}, t0.Add(time.Hour))
	if out := mustRun(t, environ, "checkpoint", "commit", chunk, src); !strings.Contains(out, ": 3 files, 556.0 KiB, 256.0 KiB new, in ") {
		t.Fatalf("a commit with a new optimizer printed %q", out)
	}
	// Restoring over a directory that holds something needs --force.
	if r := runBaton(t, environ, "checkpoint", "restore", restored); r.code != exitUsage || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("restore over a full directory without --force: %+v", r)
	}
	mustRun(t, environ, "checkpoint", "restore", "--force", restored)
	sameTree(t, restored, src)

	// GC with the default grace deletes no young chunk; with --keep 1 and
	// no grace, checkpoints 1 and 2 go and with them the old optimizer's
	// 4 chunks.
	if out := mustRun(t, environ, "checkpoint", "gc"); !strings.Contains(out, "deleted 0 (0 B)") {
		t.Fatalf("gc without retention printed %q", out)
	}
	out = mustRun(t, environ, "checkpoint", "gc", "--keep", "1", "--grace", "0s")
	if !strings.Contains(out, "deleted checkpoints: 1, 2\n") || !strings.Contains(out, "chunks: 14 in the store, 10 referenced by 1 manifest; deleted 4 (256.0 KiB)") {
		t.Fatalf("gc --keep 1 printed:\n%s", out)
	}
	if list := listJSON(t, environ); len(list) != 1 || list[0].Seq != 3 || !list[0].Latest {
		t.Fatalf("ls --json after gc: %+v", list)
	}
	if r := runBaton(t, environ, "checkpoint", "restore", "--seq", "1", t.TempDir()); r.code != exitFailure || !strings.Contains(r.stderr, "has no checkpoint 1") {
		t.Fatalf("restore of a collected checkpoint: %+v", r)
	}
	again := filepath.Join(t.TempDir(), "again")
	mustRun(t, environ, "checkpoint", "restore", again)
	sameTree(t, again, src)
}

// TestCheckpointPinSurvivesRetention pins the first checkpoint, so that
// retention keeps it, and unpins it again.
func TestCheckpointPinSurvivesRetention(t *testing.T) {
	environ := checkpointEnv("file://"+t.TempDir(), "pinned")
	src := t.TempDir()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 3 {
		writeTree(t, src, map[string][]byte{"f": randomData(byte(i), 1000)}, t0.Add(time.Duration(i)*time.Minute))
		mustRun(t, environ, "checkpoint", "commit", src)
	}
	if out := mustRun(t, environ, "checkpoint", "pin", "1"); out != "pinned checkpoint 1 of run pinned\n" {
		t.Fatalf("pin printed %q", out)
	}
	if ls := mustRun(t, environ, "checkpoint", "ls"); !regexp.MustCompile(`(?m)^1 .* pinned$`).MatchString(ls) {
		t.Fatalf("ls does not mark 1 pinned:\n%s", ls)
	}
	if out := mustRun(t, environ, "checkpoint", "gc", "--keep=1", "--grace=0s"); !strings.Contains(out, "deleted checkpoints: 2\n") {
		t.Fatalf("gc with a pin printed:\n%s", out)
	}
	mustRun(t, environ, "checkpoint", "unpin", "1")
	if out := mustRun(t, environ, "checkpoint", "gc", "--keep=1", "--grace=0s"); !strings.Contains(out, "deleted checkpoints: 1\n") {
		t.Fatalf("gc after unpin printed:\n%s", out)
	}
}

// TestCheckpointUsageErrors checks that every mistake exits 2 with one line
// naming the flag or variable to fix.
func TestCheckpointUsageErrors(t *testing.T) {
	dir := t.TempDir()
	store := "file://" + t.TempDir()
	noEnv := map[string]string{"BATON_STORE": "", "BATON_RUN_ID": "", "BATON_RUN": ""}
	with := func(kv ...string) map[string]string { return withEnv(noEnv, kv...) }
	cases := []struct {
		name    string
		environ map[string]string
		args    []string
		want    string
	}{
		{"no command", noEnv, nil, "want a command"},
		{"unknown command", noEnv, []string{"frob"}, `unknown command "frob"`},
		{"missing store", noEnv, []string{"ls", "--run", "r"}, "--store: required (or set BATON_STORE, or store in the config file)"},
		{"missing run", noEnv, []string{"ls", "--store", store}, "--run: required (or set BATON_RUN_ID, or run_id in the config file)"},
		{"BATON_RUN is not the run's variable", with("BATON_STORE", store, "BATON_RUN", "r"), []string{"ls"}, "BATON_RUN_ID"},
		{"missing run in commit", with("BATON_STORE", store), []string{"commit", dir}, "BATON_RUN_ID"},
		{"missing run in gc --keep", with("BATON_STORE", store), []string{"gc", "--keep", "2"}, "BATON_RUN_ID"},
		{"invalid run id", with("BATON_STORE", store), []string{"ls", "--run", "../other"}, "--run=../other: want 1 to 128 of [A-Za-z0-9._-]"},
		{"invalid BATON_RUN_ID", with("BATON_STORE", store, "BATON_RUN_ID", ".hidden"), []string{"restore", dir}, `BATON_RUN_ID=".hidden": want 1 to 128`},
		{"commit without DIR", with("BATON_STORE", store, "BATON_RUN_ID", "r"), []string{"commit"}, "want DIR"},
		{"commit of a missing DIR", with("BATON_STORE", store, "BATON_RUN_ID", "r"), []string{"commit", filepath.Join(dir, "nope")}, "is not a directory"},
		{"bad meta", with("BATON_STORE", store, "BATON_RUN_ID", "r"), []string{"commit", "--meta", "novalue", dir}, "want KEY=VALUE"},
		{"chunk size too small", with("BATON_STORE", store, "BATON_RUN_ID", "r"), []string{"commit", "--chunk-size=4KiB", dir}, "--chunk-size=4KiB: want 64KiB to 1GiB"},
		{"bad BATON_CHUNK_SIZE", with("BATON_STORE", store, "BATON_RUN_ID", "r", "BATON_CHUNK_SIZE", "big"), []string{"commit", dir}, "BATON_CHUNK_SIZE"},
		{"bad seq", with("BATON_STORE", store, "BATON_RUN_ID", "r"), []string{"show", "latest"}, `SEQ "latest"`},
		{"ls takes no argument", with("BATON_STORE", store, "BATON_RUN_ID", "r"), []string{"ls", "x"}, "takes no arguments"},
		{"negative keep", with("BATON_STORE", store), []string{"gc", "--keep=-1"}, "--keep=-1"},
		{"bad store URL", with("BATON_STORE", "gs://bucket/x", "BATON_RUN_ID", "r"), []string{"ls"}, `unknown scheme "gs"`},
		{"bad driver", with("BATON_STORE", store, "BATON_RUN_ID", "r", "BATON_S3_DRIVER", "gcs"), []string{"ls"}, `BATON_S3_DRIVER="gcs": want aws or minio`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runBaton(t, c.environ, append([]string{"checkpoint"}, c.args...)...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", r.code, exitUsage, r.stderr)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, "baton checkpoint: ") || !strings.Contains(last, c.want) {
				t.Fatalf("the last line of stderr does not say %q:\n%s", c.want, r.stderr)
			}
		})
	}
}

// TestCheckpointFailures checks the errors that exit 1 with one line: a
// lease held by another host, and a run with no checkpoint.
func TestCheckpointFailures(t *testing.T) {
	storeDir := t.TempDir()
	environ := checkpointEnv("file://"+storeDir, "busy")
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"f": []byte("data")}, time.Now())

	for _, args := range [][]string{{"restore", filepath.Join(t.TempDir(), "d")}, {"show"}} {
		r := runBaton(t, environ, append([]string{"checkpoint"}, args...)...)
		if r.code != exitFailure || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "run busy: no checkpoint committed yet") {
			t.Fatalf("%s with no checkpoint: %+v", args[0], r)
		}
	}

	other, err := checkpoint.Open(filetest.Open(t, storeDir), checkpoint.Options{
		Run: "busy", Holder: checkpoint.Holder{ID: "trainer-7/agent", Host: "trainer-7", Platform: "runpod"}, LeaseDuration: time.Hour, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Acquire(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := runBaton(t, environ, "checkpoint", "commit", src)
	if r.code != exitFailure || strings.Count(r.stderr, "\n") != 1 ||
		!strings.Contains(r.stderr, "lease is held by another host: trainer-7/agent on trainer-7 (runpod)") {
		t.Fatalf("commit while another host holds the lease: %+v", r)
	}
	// The same holder takes its own lease back at once.
	environ["BATON_HOLDER"] = "trainer-7/agent"
	if out := mustRun(t, environ, "checkpoint", "commit", "--platform", "runpod", src); !strings.HasPrefix(out, "committed checkpoint 1 of run busy") {
		t.Fatalf("commit by the lease's own holder printed %q", out)
	}
	if list := listJSON(t, environ); len(list) != 1 || list[0].Platform != "runpod" || list[0].Epoch != 2 {
		t.Fatalf("ls --json: %+v", list)
	}
}

// TestCheckpointS3 commits and restores through a real S3 server.
func TestCheckpointS3(t *testing.T) {
	srv := s3test.Start(t, s3test.Versitygw)
	bucket := srv.NewBucket(t)
	environ := checkpointEnv("s3://"+bucket+"/ckpt?endpoint="+srv.Endpoint, "s3-run")
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey, "AWS_REGION": srv.Region} {
		environ[k] = v
	}
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{
		"model.safetensors":  randomData(7, 9<<20+123), // 3 chunks of 4 MiB
		"trainer_state.json": []byte(`{"global_step": 7}`),
	}, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	for _, driver := range []string{"aws", "minio"} {
		t.Run(driver, func(t *testing.T) {
			environ["BATON_S3_DRIVER"] = driver
			mustRun(t, environ, "checkpoint", "commit", src)
			dst := filepath.Join(t.TempDir(), "restored")
			out := mustRun(t, environ, "checkpoint", "restore", dst)
			if !strings.Contains(out, "2 files, 9.0 MiB") {
				t.Fatalf("restore printed %q", out)
			}
			sameTree(t, dst, src)
			got, err := os.ReadFile(filepath.Join(dst, "model.safetensors"))
			if err != nil || !bytes.Equal(got, randomData(7, 9<<20+123)) {
				t.Fatalf("model came back different: %v", err)
			}
		})
	}
	// The second commit, through the other driver, found every chunk there.
	list := listJSON(t, environ)
	if len(list) != 2 || list[0].NewBytes != 9<<20+123+18 || list[1].NewBytes != 0 {
		t.Fatalf("ls --json: %+v", list)
	}
}
