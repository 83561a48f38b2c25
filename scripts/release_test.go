package scripts

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/internal/imagetest"
	"github.com/batonrun/baton/internal/testenv"
	"github.com/batonrun/baton/internal/testfs"
)

// TestActionlint runs actionlint (pinned in scripts/install-test-servers.sh)
// on .github/workflows/*.yml; it runs shellcheck on their run: scripts when
// shellcheck is on PATH. Without actionlint it skips, unless
// BATON_REQUIRE_ALL=1.
func TestActionlint(t *testing.T) {
	bin := filepath.Join(imagetest.ToolsDir(), "bin", "actionlint")
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("actionlint"); err != nil {
			testenv.Unavailable(t, "no actionlint; run scripts/install-test-servers.sh actionlint")
		}
	}
	repo := imagetest.RepoRoot(t)
	workflows, err := filepath.Glob(filepath.Join(repo, ".github", "workflows", "*.yml"))
	if err != nil || len(workflows) == 0 {
		t.Fatalf("no .github/workflows/*.yml (%v)", err)
	}
	cmd := exec.Command(bin, append([]string{"-no-color"}, workflows...)...)
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("actionlint: %v\n%s", err, out)
	}
}

// TestActionsPinned fails when a workflow uses an action by a tag or a
// branch, which its owner can move, instead of a full commit SHA with the
// version it is in a comment.
func TestActionsPinned(t *testing.T) {
	repo := imagetest.RepoRoot(t)
	workflows, err := filepath.Glob(filepath.Join(repo, ".github", "workflows", "*.yml"))
	if err != nil || len(workflows) == 0 {
		t.Fatalf("no .github/workflows/*.yml (%v)", err)
	}
	uses := regexp.MustCompile(`^\s*(?:-\s+)?uses:\s*(\S+)(.*)$`)
	pinned := regexp.MustCompile(`^[\w.-]+/[\w./-]+@[0-9a-f]{40}$`)
	comment := regexp.MustCompile(`^\s+#\s+v\d+\.\d+\.\d+\s*$`)
	n := 0
	for _, path := range workflows {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for line := 1; sc.Scan(); line++ {
			m := uses.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			n++
			if !pinned.MatchString(m[1]) || !comment.MatchString(m[2]) {
				t.Errorf("%s:%d: uses %s%s: want OWNER/REPO@<40 hex digits> # vX.Y.Z", filepath.Base(path), line, m[1], m[2])
			}
		}
		f.Close()
	}
	if n == 0 {
		t.Error("no uses: in any workflow")
	}
}

// releaseVersion is the version TestRelease builds.
const releaseVersion = "0.0.0-releasetest"

// TestRelease runs scripts/release.sh once (two builds of baton, a minute
// or two) and checks what it made: the two archives, install.sh and
// SHA256SUMS, which `sha256sum -c` verifies; archives that hold baton,
// LICENSE and README.md with fixed owners and times; a host binary that
// prints the version and an arm64 one that is an aarch64 ELF. Then
// scripts/install.sh installs that release by its version, as from GitHub
// (BATON_RELEASE_URL points at the directory instead). Without the cross
// compiler it skips, unless BATON_REQUIRE_ALL=1; -short skips it.
func TestRelease(t *testing.T) {
	testenv.SkipShort(t, "builds baton for two architectures")
	cross := map[string]string{"amd64": "aarch64-linux-gnu-gcc", "arm64": "x86_64-linux-gnu-gcc"}[runtime.GOARCH]
	if cross == "" {
		t.Skipf("releases are built on linux/amd64 or linux/arm64, not %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	if _, err := exec.LookPath(cross); err != nil {
		testenv.Unavailable(t, "no %s, the cross compiler; scripts/install-test-servers.sh cross-gcc installs it", cross)
	}
	for _, tool := range []string{"tar", "gzip", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Unavailable(t, "no %s", tool)
		}
	}
	repo := imagetest.RepoRoot(t)
	base := t.TempDir()
	dir := filepath.Join(base, "v"+releaseVersion) // as the release's download URL
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, filepath.Join(repo, "scripts", "release.sh"), releaseVersion, dir)
	cmd.Dir = repo
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("release.sh %s: %v\n%s%s", releaseVersion, err, stdout.String(), stderr.String())
	}
	t.Logf("release.sh took %s:\n%s", time.Since(start).Round(time.Second), stderr.String())

	archives := map[string]string{}
	for _, arch := range []string{"amd64", "arm64"} {
		archives[arch] = "baton_" + releaseVersion + "_linux_" + arch + ".tar.gz"
	}
	names := testfs.Names(t, dir)
	want := []string{"SHA256SUMS", archives["amd64"], archives["arm64"], "install.sh"}
	if !slices.Equal(names, want) {
		t.Fatalf("release.sh made %q, want %q", names, want)
	}
	sums := string(mustRead(t, filepath.Join(dir, "SHA256SUMS")))
	if stdout.String() != sums {
		t.Errorf("release.sh printed %q, want SHA256SUMS:\n%s", stdout.String(), sums)
	}
	check := exec.Command("sha256sum", "-c", "SHA256SUMS")
	check.Dir = dir
	if out, err := check.CombinedOutput(); err != nil || strings.Count(string(out), ": OK\n") != 3 {
		t.Errorf("sha256sum -c SHA256SUMS: %v\n%s", err, out)
	}

	bins := map[string]string{}
	for arch, name := range archives {
		bins[arch] = unpackRelease(t, filepath.Join(dir, name), filepath.Join(base, arch))
	}
	out, err := exec.Command(bins[runtime.GOARCH], "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "baton v"+releaseVersion+" ") || !strings.Contains(string(out), "linux/"+runtime.GOARCH) {
		t.Errorf("%s's baton version: %v: %q, want baton v%s ... linux/%s", archives[runtime.GOARCH], err, out, releaseVersion, runtime.GOARCH)
	}
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		f, err := elf.Open(bins[arch])
		if err != nil {
			t.Errorf("%s: baton: %v", archives[arch], err)
			continue
		}
		if f.Machine != machine || f.Class != elf.ELFCLASS64 || f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
			t.Errorf("%s: baton is a %v %v %v, want a 64-bit %v executable", archives[arch], f.Class, f.Machine, f.Type, machine)
		}
		f.Close()
	}

	t.Run("install.sh by version", func(t *testing.T) {
		if runtime.GOOS != "linux" {
			t.Skip("install.sh installs a Linux release")
		}
		dest := filepath.Join(t.TempDir(), "bin")
		install := func(args ...string) (string, int) {
			t.Helper()
			cmd := exec.Command("/bin/sh", append([]string{filepath.Join(dir, "install.sh"), "--dest", dest}, args...)...)
			cmd.Env = append(os.Environ(), "BATON_RELEASE_URL=file://"+base)
			out, err := cmd.CombinedOutput()
			code := imagetest.ExitCode(err)
			if code < 0 {
				t.Fatalf("install.sh %q: %v\n%s", args, err, out)
			}
			return string(out), code
		}
		hostArchive := archives[runtime.GOARCH]
		var hostSum string
		for line := range strings.Lines(sums) {
			if sum, name, _ := strings.Cut(strings.TrimSpace(line), "  "); name == hostArchive {
				hostSum = sum
			}
		}
		for _, tc := range []struct {
			name string
			args []string
			code int
			out  string
		}{
			{"pinned to another archive", []string{"--sha256", strings.Repeat("ab", 32), "v" + releaseVersion}, 1, "SHA-256 mismatch for " + hostArchive},
			{"no such release", []string{"v9.9.9"}, 1, "no such file"},
			{"bad version", []string{"v1/../x"}, 2, "want a release vX.Y.Z"},
			{"release", []string{"v" + releaseVersion}, 0, "installed " + dest + "/baton: baton v" + releaseVersion + " "},
			{"again: nothing to do", []string{"--sha256", hostSum, "v" + releaseVersion}, 0, "already installed with version v" + releaseVersion},
		} {
			out, code := install(tc.args...)
			if code != tc.code || !strings.Contains(out, tc.out) {
				t.Errorf("%s: install.sh %q: exit %d, want %d, with %q in the output:\n%s", tc.name, tc.args, code, tc.code, tc.out, out)
			}
		}
		if got, want := mustRead(t, filepath.Join(dest, "baton")), mustRead(t, bins[runtime.GOARCH]); !slices.Equal(got, want) {
			t.Errorf("%s/baton is not the release's binary", dest)
		}
		if left, _ := filepath.Glob(filepath.Join(dest, ".baton.*")); len(left) > 0 {
			t.Errorf("left behind: %q", left)
		}

		// A SHA256SUMS that does not match the archive: nothing installed.
		os.Remove(filepath.Join(dest, "baton"))
		tampered := strings.Replace(sums, hostSum, strings.Repeat("0", 64), 1)
		if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(tampered), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, code := install("v" + releaseVersion); code != 1 || !strings.Contains(out, "SHA256SUMS says") {
			t.Errorf("with a wrong SHA256SUMS: exit %d, want 1, with %q in the output:\n%s", code, "SHA256SUMS says", out)
		}
		if _, err := os.Stat(filepath.Join(dest, "baton")); err == nil {
			t.Errorf("installed from an archive that SHA256SUMS does not vouch for")
		}
	})
}

// unpackRelease checks a release archive (baton, LICENSE, README.md, sorted,
// owned by 0:0, one mtime, modes 0755 and 0644), writes its baton into dir
// and returns its path.
func unpackRelease(t *testing.T, archive, dir string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", archive, err)
	}
	if !zr.ModTime.IsZero() || zr.Name != "" {
		t.Errorf("%s: gzip header has name %q, time %v: want neither (gzip -n)", archive, zr.Name, zr.ModTime)
	}
	tr := tar.NewReader(zr)
	var names []string
	var mtime time.Time
	bin := filepath.Join(dir, "baton")
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", archive, err)
		}
		names = append(names, h.Name)
		mode := int64(0o644)
		if h.Name == "baton" {
			mode = 0o755
		}
		if h.Typeflag != tar.TypeReg || h.Mode&0o7777 != mode || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: %s: type %c, mode %o, owner %d:%d; want a file, mode %o, owner 0:0", archive, h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, mode)
		}
		if mtime.IsZero() {
			mtime = h.ModTime
		} else if !h.ModTime.Equal(mtime) {
			t.Errorf("%s: %s has mtime %v, the first file %v: want one time", archive, h.Name, h.ModTime, mtime)
		}
		if h.Name == "baton" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			out, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(out, tr); err != nil {
				t.Fatal(err)
			}
			if err := out.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if want := []string{"LICENSE", "README.md", "baton"}; !slices.Equal(names, want) {
		t.Errorf("%s holds %q, want %q (sorted)", archive, names, want)
	}
	return bin
}
