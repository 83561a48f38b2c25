package agent

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/agent/platform"
)

// TestScrubWanted: --scrub as set wins; unset, it is on for --on-exit=stop
// or terminate and on Vast.ai, and off elsewhere, RunPod included (nothing
// in a pod tells Community Cloud from Secure Cloud).
func TestScrubWanted(t *testing.T) {
	for _, c := range []struct {
		args     []string
		platform string
		want     bool
	}{
		{nil, platform.Local, false},
		{nil, platform.RunPod, false},
		{nil, platform.Vast, true},
		{[]string{"--on-exit=stop"}, platform.RunPod, true},
		{[]string{"--on-exit=terminate"}, platform.Docker, true},
		{[]string{"--on-exit=none"}, platform.Docker, false},
		{[]string{"--scrub"}, platform.Local, true},
		{[]string{"--scrub=false"}, platform.Vast, false},
		{[]string{"--scrub=false", "--on-exit=terminate"}, platform.RunPod, false},
	} {
		cfg, _, err := config.Load(append([]string{"--store", "file:///s", "--run", "r"}, c.args...), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		a := &agent{cfg: cfg, desc: platform.Description{Platform: c.platform}}
		if got, by := a.scrubWanted(); got != c.want {
			t.Errorf("%v on %s: scrub %v (%s), want %v", c.args, c.platform, got, by, c.want)
		}
	}
}

// TestScrubGuardRefuses: never /, $HOME, /workspace, the working directory
// or what holds it, a source of the run, or a mount point.
func TestScrubGuardRefuses(t *testing.T) {
	root := resolve(t.TempDir())
	t.Setenv("HOME", filepath.Join(root, "home"))
	wd := filepath.Join(root, "work", "sub")
	store := filepath.Join(root, "store")
	for _, d := range []string{wd, store, filepath.Join(root, "home"), filepath.Join(root, "ckpt")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(wd)
	g := newScrubGuard(config.Config{Store: "file://" + store, Data: []config.DataMapping{{Src: "s3://b/d", Dst: "x"}}})
	for path, refused := range map[string]bool{
		"/":                               true,
		"/workspace":                      true,
		"/proc":                           true, // a mount point
		filepath.Join(root, "home"):       true,
		wd:                                true,
		filepath.Join(root, "work"):       true,
		root:                              true, // holds the working directory
		store:                             true,
		filepath.Join(store, "sub"):       true,
		filepath.Join(root, "ckpt"):       false,
		filepath.Join(root, "work", "x"):  false,
		filepath.Join(root, "store-copy"): false,
	} {
		if why := g.refuse(path); (why != "") != refused {
			t.Errorf("refuse(%s) = %q, want refused %v", path, why, refused)
		}
	}
}

// TestScrubRemove: counts files and bytes, removes a symbolic link without
// following it, and keeps the checkpoint directory's forks.
func TestScrubRemove(t *testing.T) {
	root := t.TempDir()
	outside := filepath.Join(root, "outside")
	dir := filepath.Join(root, "ckpt")
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(outside, "keep.bin"), "keep")
	write(filepath.Join(dir, "a.bin"), "12345")
	write(filepath.Join(dir, "sub", "b.bin"), "123")
	if err := os.Symlink(outside, filepath.Join(dir, "sub", "link")); err != nil {
		t.Fatal(err)
	}
	g := &scrubGuard{mounts: map[string]bool{}}
	st, err := g.remove(dir, false)
	if err != nil || st.files != 3 || st.bytes != 8 || !st.dir {
		t.Fatalf("remove: %+v, %v; want 3 files, 8 bytes, the directory gone", st, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s is still there", dir)
	}
	if _, err := os.Stat(filepath.Join(outside, "keep.bin")); err != nil {
		t.Fatalf("the link's target went too: %v", err)
	}

	write(filepath.Join(dir, "a.bin"), "12345")
	write(filepath.Join(dir, ".baton-fork-3-x", "m.bin"), "fork")
	st, err = g.remove(dir, true)
	if err != nil || st.files != 1 || st.dir || len(st.kept) != 1 {
		t.Fatalf("remove with a fork: %+v, %v; want 1 file, the fork kept", st, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".baton-fork-3-x", "m.bin")); err != nil {
		t.Fatal(err)
	}
}

// TestScrubSkipsUnsavedWork: a checkpoint directory that holds files its
// record does not account for is not scrubbed, whatever --scrub says.
func TestScrubSkipsUnsavedWork(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.bin"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load([]string{"--store", "file:///s", "--run", "r", "--scrub"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	a := &agent{cfg: cfg, dir: dir, log: slog.New(slog.NewTextHandler(&log, nil))}
	a.scrub()
	if _, err := os.Stat(filepath.Join(dir, "model.bin")); err != nil {
		t.Fatalf("scrubbed work the store may lack: %v", err)
	}
	if !strings.Contains(log.String(), "scrub skipped") {
		t.Fatalf("no 'scrub skipped' line:\n%s", log.String())
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/mnt/a\040b\134c`); got != `/mnt/a b\c` {
		t.Fatalf("got %q", got)
	}
}
