package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/agent/doctor"
	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/sync/transfer"
)

// TestOneConfigFileForEveryCommand: the file written for baton run serves
// the checkpoint commands too, run's own keys and all.
func TestOneConfigFileForEveryCommand(t *testing.T) {
	dir := t.TempDir()
	store := "file://" + filepath.Join(dir, "store")
	data := filepath.Join(dir, "ck")
	writeTree(t, data, map[string][]byte{"model.pt": randomData(1, 1000)}, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	cfg := filepath.Join(dir, "baton.yaml")
	yaml := "store: " + store + "\nrun_id: r1\ncheckpoint_interval: 15m\non_exit: stop\nworkers: 4\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	noEnv := map[string]string{"BATON_STORE": "", "BATON_RUN_ID": "", "BATON_CONFIG": ""}
	if r := runBaton(t, noEnv, "checkpoint", "commit", "--config", cfg, data); r.code != exitOK {
		t.Fatalf("commit --config: exit %d\n%s", r.code, r.stderr)
	}
	r := runBaton(t, noEnv, "checkpoint", "ls", "--config", cfg)
	if r.code != exitOK || !strings.Contains(r.stdout, "latest") {
		t.Fatalf("ls --config: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	noEnv["BATON_CONFIG"] = cfg
	if r := runBaton(t, noEnv, "checkpoint", "show", "1"); r.code != exitOK || !strings.Contains(r.stdout, "model.pt") {
		t.Fatalf("show with BATON_CONFIG: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("store: "+store+"\nworkers: many\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runBaton(t, noEnv, "checkpoint", "ls", "--config", bad, "--run", "r1")
	if want := bad + `:2: workers: "many": not an integer`; r.code != exitUsage || !strings.Contains(r.stderr, want) {
		t.Fatalf("exit %d, want %d and %q:\n%s", r.code, exitUsage, want, r.stderr)
	}
}

// TestHelpExitsZero: every command's -h prints its flags to stdout.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"run", "-h"}, {"pull", "--help"}, {"checkpoint", "gc", "-h"}, {"doctor", "-h"}} {
		r := runBaton(t, nil, args...)
		if r.code != exitOK || !strings.Contains(r.stdout, "Usage: baton "+args[0]) || !strings.Contains(r.stdout, "--") {
			t.Errorf("%q: exit %d, stdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
		}
	}
}

// TestDefaultsAreThePackages': the defaults written in config's tags are
// the constants of the packages that use them.
func TestDefaultsAreThePackages(t *testing.T) {
	var tr config.Transfer
	var gc config.CheckpointGC
	var d config.Doctor
	var cc config.CheckpointCommit
	for _, dst := range []any{&tr, &gc, &d, &cc} {
		if _, err := config.LoadInto(dst, nil, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"pull --workers", int64(tr.Workers), transfer.DefaultWorkers},
		{"pull --part-size", int64(tr.PartSize), transfer.DefaultPartSize},
		{"gc --grace", int64(gc.Grace), int64(checkpoint.DefaultGCGrace)},
		{"doctor --timeout", int64(d.Timeout), int64(doctor.DefaultTimeout)},
		{"commit --chunk-size", int64(cc.ChunkSize), checkpoint.DefaultChunkSize},
	} {
		if c.got != c.want {
			t.Errorf("%s: default %d, the package's %d", c.name, c.got, c.want)
		}
	}
}

// TestCLILikeItsPeers: flags after the operands, one error line with a
// did-you-mean for a misspelt command, flag or variable.
func TestCLILikeItsPeers(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeTree(t, src, map[string][]byte{"a.bin": randomData(2, 100)}, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if r := runBaton(t, nil, "push", src, "file://"+filepath.Join(dir, "store"), "--workers", "2", "--progress=none"); r.code != exitOK {
		t.Fatalf("push with flags after the operands: exit %d\n%s", r.code, r.stderr)
	}
	for _, c := range []struct {
		args    []string
		environ map[string]string
		code    int
		want    string // the last line of stderr
	}{
		{[]string{"pul", "x", "y"}, nil, exitUsage, `baton: unknown command "pul"; did you mean pull? (baton help lists the commands)`},
		{[]string{"checkpoint", "lss"}, nil, exitUsage, `baton checkpoint: unknown command "lss"; did you mean ls? (baton checkpoint -h lists them)`},
		{[]string{"pull", "--wrokers=2", "file:///x", dir}, nil, exitUsage, `baton pull: --wrokers: unknown flag; did you mean --workers?`},
		{[]string{"push", src, "file://" + filepath.Join(dir, "store2"), "--progress=none"}, map[string]string{"BATON_WROKERS": "2"}, exitOK,
			`baton push: warning: BATON_WROKERS is set but no baton command reads it; did you mean BATON_WORKERS?`},
	} {
		r := runBaton(t, c.environ, c.args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != c.code || !strings.Contains(r.stderr, c.want) || c.code != exitOK && lines[len(lines)-1] != c.want {
			t.Errorf("%q: exit %d, want %d and %q; stderr:\n%s", c.args, r.code, c.code, c.want, r.stderr)
		}
		if c.code != exitOK && len(lines) != 1 {
			t.Errorf("%q: %d lines of stderr, want one", c.args, len(lines))
		}
	}
}
