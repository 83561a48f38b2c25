package scripts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonrun/baton/internal/buildflags"
	"github.com/batonrun/baton/internal/imagetest"
	"github.com/batonrun/baton/internal/testenv"
)

// shellcheckExcluded lists, per script that is not yet clean, the findings
// the test lets pass for now, with the fix each wants. Remove an entry once
// its script is fixed; every other script must pass shellcheck with no
// finding at all, notes and style included.
var shellcheckExcluded = map[string][]string{}

// TestShellcheck runs shellcheck on every scripts/*.sh, following the files
// they source. Without shellcheck it skips, unless BATON_REQUIRE_ALL=1.
func TestShellcheck(t *testing.T) {
	bin := imagetest.LookPath(t, "shellcheck")["shellcheck"]
	repo := imagetest.RepoRoot(t)
	scripts, err := filepath.Glob(filepath.Join(repo, "scripts", "*.sh"))
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts/*.sh (%v)", err)
	}
	for _, path := range scripts {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			args := []string{"-x", "-P", "SCRIPTDIR", "-f", "gcc"}
			if ex := shellcheckExcluded[name]; len(ex) > 0 {
				args = append(args, "-e", strings.Join(ex, ","))
				t.Logf("findings %s still let through: see shellcheckExcluded", strings.Join(ex, ", "))
			}
			cmd := exec.Command(bin, append(args, filepath.Join("scripts", name))...)
			cmd.Dir = repo
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("shellcheck %s: %v\n%s", name, err, out)
			}
		})
	}
}

// TestCrashLoopSmoke runs scripts/crash-loop.sh for 3 trials on a 16 MiB
// checkpoint (a build of baton and a few seconds): it must print its summary
// line and find every published checkpoint restorable. Without versitygw in
// $BATON_TOOLS/bin it skips, unless BATON_REQUIRE_ALL=1; -short skips it.
func TestCrashLoopSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds baton and runs versitygw; skipped with -short")
	}
	tools := imagetest.ToolsDir()
	if _, err := os.Stat(filepath.Join(tools, "bin", "versitygw")); err != nil {
		testenv.Unavailable(t, "no versitygw (%v); run scripts/install-test-servers.sh versitygw", err)
	}
	repo := imagetest.RepoRoot(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(repo, "scripts", "crash-loop.sh"), "3")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "BATON_TOOLS="+tools, "SIZE_MIB=16", "SEED=1", "DRIVER=aws")
	// SIGTERM, not SIGKILL, on the timeout: the script then stops its
	// versitygw and removes its directory.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	summary := regexp.MustCompile(`^crash-loop: trials=3 killed=\d+ finished=\d+ published=([1-9]\d*) unrestorable=0 failed_commits=0 torn_objects_seen=\d+ driver=aws seed=1 time=\d+s\n$`)
	if err != nil || !summary.MatchString(stdout.String()) {
		t.Fatalf("crash-loop.sh 3: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
}

// installVersion is stamped into the baton that TestInstall installs.
const installVersion = "v0.0.0-installtest"

// TestInstall runs scripts/install.sh in a chroot of the debootstrapped
// Debian base, as on an image a user rents as it is: it fetches a baton built
// here over https (an httptest server whose CA the chroot's curl is given),
// from a file and from s3:// through an aws CLI stand-in, checks the SHA-256,
// installs, does nothing the second time, refuses what it cannot verify or
// run, and starts `baton run --detach` with the arguments after the source.
func TestInstall(t *testing.T) {
	testenv.SkipShort(t, "needs a debootstrapped root and a baton build")
	imagetest.Need(t, "debootstrap", "unshare", "chroot")
	repo := imagetest.RepoRoot(t)
	root := imagetest.Root(t)
	binary := buildBaton(t)
	sum := sha256.Sum256(binary)
	sha := hex.EncodeToString(sum[:])

	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/baton" {
			http.NotFound(w, r)
			return
		}
		w.Write(binary)
	}))
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	files := map[string][]byte{
		"/opt/install.sh":          mustRead(t, filepath.Join(repo, "scripts", "install.sh")),
		"/opt/trainer.py":          mustRead(t, filepath.Join(repo, "examples", "trainer.py")),
		"/opt/ca.pem":              ca,
		"/opt/baton.bin":           binary,
		"/opt/s3/bucket/bin/baton": binary,
		"/opt/notelf":              []byte("#!/bin/sh\nexit 3\n"),
		// An aws CLI stand-in: `aws s3 cp [--only-show-errors] s3://B/K DST`
		// copies /opt/s3/B/K.
		"/opt/fakeaws/aws": []byte("#!/bin/sh\n[ \"$1 $2\" = 's3 cp' ] || exit 64\nshift 2\n[ \"$1\" = --only-show-errors ] && shift\nsrc=/opt/s3/${1#s3://}\n[ -f \"$src\" ] || { echo \"fatal error: An error occurred (404) when calling the HeadObject operation: Not Found\" >&2; exit 1; }\ncp \"$src\" \"$2\"\n"),
	}
	for p, data := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, ".sh") || strings.HasSuffix(p, "/aws") || p == "/opt/notelf" {
			mode = 0o755
		}
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), data, mode); err != nil {
			t.Fatal(err)
		}
	}
	notELF := sha256.Sum256(files["/opt/notelf"])
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "CURL_CA_BUNDLE=/opt/ca.pem",
		"BATON_LOG_FORMAT=text", "BATON_CHECKPOINT_INTERVAL=0", "BATON_TELEMETRY_UPLOAD=0", "BATON_METRICS_ADDR=" + imagetest.FreeLoopback(t),
	}
	url := srv.URL + "/baton"
	otherSHA := strings.Repeat("ab", 32)

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		// code is the exit status wanted; out, a text the output must hold.
		code int
		out  string
		// installed is where a baton must now be, or absent where none may be.
		installed, absent string
	}{
		{name: "https", args: []string{"--sha256", sha, url}, out: "installed /usr/local/bin/baton: baton " + installVersion, installed: "/usr/local/bin/baton"},
		{name: "again: nothing to do", args: []string{"--sha256", strings.ToUpper(sha), url}, out: "already installed", installed: "/usr/local/bin/baton"},
		{name: "file URL", args: []string{"--dest", "/opt/a", "--sha256", "sha256:" + sha, "file:///opt/baton.bin"}, out: "installed /opt/a/baton", installed: "/opt/a/baton"},
		{name: "path", args: []string{"--dest=/opt/b", "--sha256=" + sha, "/opt/baton.bin"}, out: "installed /opt/b/baton", installed: "/opt/b/baton"},
		{name: "s3 through the aws CLI", env: []string{"PATH=/opt/fakeaws:/usr/bin:/bin"}, args: []string{"--dest", "/opt/c", "--sha256", sha, "s3://bucket/bin/baton"}, out: "installed /opt/c/baton", installed: "/opt/c/baton"},
		{name: "s3 key missing", env: []string{"PATH=/opt/fakeaws:/usr/bin:/bin"}, args: []string{"--dest", "/opt/d", "--sha256", sha, "s3://bucket/nope"}, code: 1, out: "aws s3 cp s3://bucket/nope failed", absent: "/opt/d/baton"},
		{name: "s3 without the aws CLI", args: []string{"--dest", "/opt/d", "--sha256", sha, "s3://bucket/bin/baton"}, code: 1, out: "needs the aws CLI", absent: "/opt/d/baton"},
		{name: "checksum mismatch", args: []string{"--dest", "/opt/d", "--sha256", otherSHA, url}, code: 1, out: "SHA-256 mismatch", absent: "/opt/d/baton"},
		{name: "checksum mismatch keeps the installed one", args: []string{"--sha256", otherSHA, url}, code: 1, out: "SHA-256 mismatch", installed: "/usr/local/bin/baton"},
		{name: "not found", args: []string{"--dest", "/opt/d", "--sha256", sha, srv.URL + "/nope"}, code: 1, out: "download failed", absent: "/opt/d/baton"},
		{name: "does not run here", args: []string{"--dest", "/opt/d", "--sha256", hex.EncodeToString(notELF[:]), "/opt/notelf"}, code: 1, out: "does not run on this system", absent: "/opt/d/baton"},
		{name: "no checksum", args: []string{url}, code: 2, out: "--sha256 is required"},
		{name: "short checksum", args: []string{"--sha256", sha[:40], url}, code: 2, out: "want 64 hex digits"},
		{name: "no source", args: []string{"--sha256", sha}, code: 2, out: "no SOURCE"},
		{name: "unknown scheme", args: []string{"--sha256", sha, "ftp://x/baton"}, code: 2, out: "want an https://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before os.FileInfo
			if tc.installed != "" {
				before, _ = os.Stat(filepath.Join(root, tc.installed))
			}
			out, code := chroot(t, root, append(env, tc.env...), append([]string{"/opt/install.sh"}, tc.args...)...)
			if code != tc.code || !strings.Contains(out, tc.out) {
				t.Fatalf("exit %d, want %d, with %q in the output:\n%s", code, tc.code, tc.out, out)
			}
			if tc.installed != "" {
				after, err := os.Stat(filepath.Join(root, tc.installed))
				if err != nil {
					t.Fatalf("%s not installed: %v", tc.installed, err)
				}
				if after.Mode().Perm() != 0o755 {
					t.Errorf("%s: mode %v, want 0755", tc.installed, after.Mode())
				}
				if got := mustRead(t, filepath.Join(root, tc.installed)); sha256.Sum256(got) != sum {
					t.Errorf("%s is not the binary served", tc.installed)
				}
				if before != nil && !os.SameFile(before, after) {
					t.Errorf("%s was replaced; the checksum was the same or wrong, so it must stay", tc.installed)
				}
			}
			if tc.absent != "" {
				if _, err := os.Stat(filepath.Join(root, tc.absent)); err == nil {
					t.Errorf("%s was installed", tc.absent)
				}
				if left, _ := filepath.Glob(filepath.Join(root, filepath.Dir(tc.absent), ".baton.*")); len(left) > 0 {
					t.Errorf("left behind: %q", left)
				}
			}
		})
	}

	// The on-start line of a Vast.ai instance, run twice as on two starts of
	// one instance while the first baton still trains: one install, one
	// baton run; then the trainer finishes and the run is in the store.
	t.Run("start baton run --detach", func(t *testing.T) {
		line := "/opt/install.sh --dest /opt/e --sha256 " + sha + " " + url +
			" --store file:///opt/store --run installtest --checkpoint-dir /opt/ckpt --pid-file /tmp/baton.pid --log-file /tmp/baton.log" +
			" -- python3 /opt/trainer.py --steps 40 --step-seconds 0.1 --save-every 10 --notify"
		script := "set -e\n" + line + "\n" + line + "\n" + `pid=$(cat /tmp/baton.pid)
i=0
while [ -e /proc/$pid ] && ! grep -q ') Z' /proc/$pid/stat 2>/dev/null; do
  i=$((i+1)); [ $i -lt 1200 ] || { echo "baton still running after 120 s"; exit 9; }
  sleep 0.1
done
echo "--- log"
cat /tmp/baton.log
`
		out, code := chroot(t, root, env, "/bin/sh", "-c", script)
		for _, want := range []string{
			"installed /opt/e/baton", "baton run started in the background",
			"already installed", "baton run is already running",
			"starting fresh", "done step=40",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in the output", want)
			}
		}
		if code != 0 || t.Failed() {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if strings.Count(out, "starting fresh")+strings.Count(out, "resumed from") != 1 {
			t.Errorf("the trainer started more than once:\n%s", out)
		}
		if _, err := os.Stat(filepath.Join(root, "opt/store/runs/installtest/latest.json")); err != nil {
			t.Errorf("nothing committed to the store: %v", err)
		}
	})
}

// chroot runs argv in root and returns its combined output and exit status.
func chroot(t *testing.T, root string, env []string, argv ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := imagetest.Chroot(ctx, root, env, argv...).CombinedOutput()
	code := imagetest.ExitCode(err)
	if code < 0 {
		t.Fatalf("%q: %v\n%s", argv, err, out)
	}
	return string(out), code
}

// buildBaton builds baton with the settings every build needs
// (internal/buildflags) and the version stamped, and returns the binary.
func buildBaton(t *testing.T) []byte {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "baton")
	start := time.Now()
	if err := buildflags.Build(bin, "-X", "main.version="+installVersion); err != nil {
		t.Fatal(err)
	}
	t.Logf("baton built in %s", time.Since(start).Round(time.Second))
	return mustRead(t, bin)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
