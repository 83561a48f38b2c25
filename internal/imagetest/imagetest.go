// Package imagetest builds and runs baton's images in tests, with no Docker
// engine and no registry: buildah (storage driver vfs, chroot isolation)
// builds the Dockerfiles on a local Debian base that debootstrap made, and
// runs commands in the images it built; a plain chroot into the same Debian
// root stands in for "an image a user already has".
//
// The base is made by scripts/build-test-base.sh and cached under BATON_TOOLS
// (default ~/.cache/baton-tools), as is buildah's storage, so only the first
// run pays for debootstrap. Tests that need buildah, debootstrap or root are
// skipped when they are missing, unless BATON_REQUIRE_ALL=1 (CI, see
// internal/testenv), which turns the skip into a failure so that the image
// tests never pass silently.
package imagetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonrun/baton/internal/testenv"
)

// Need returns the paths of the named commands. When one is missing, or the
// test does not run as root (debootstrap, chroot and buildah's chroot
// isolation all need it), it calls testenv.Unavailable.
func Need(t testing.TB, names ...string) map[string]string {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "image tests need root (debootstrap, chroot, buildah)")
	}
	return LookPath(t, names...)
}

// LookPath returns the paths of the named commands, or calls testenv.Unavailable
// when one is missing.
func LookPath(t testing.TB, names ...string) map[string]string {
	t.Helper()
	paths := make(map[string]string, len(names))
	var missing []string
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			missing = append(missing, n)
			continue
		}
		paths[n] = p
	}
	if len(missing) > 0 {
		testenv.Unavailable(t, "%s not found (scripts/install-test-servers.sh image-tools installs them with apt)", strings.Join(missing, ", "))
	}
	return paths
}

// RepoRoot returns the directory that holds baton's go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(data, []byte("module github.com/batonrun/baton\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("imagetest: baton's go.mod not found above the working directory")
		}
		dir = parent
	}
}

// ToolsDir returns BATON_TOOLS, or ~/.cache/baton-tools.
func ToolsDir() string {
	if d := os.Getenv("BATON_TOOLS"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "baton-tools")
	}
	return filepath.Join(home, ".cache", "baton-tools")
}

// BaseTarball returns the path of the Debian base tarball, making it with
// scripts/build-test-base.sh when it is not cached yet.
func BaseTarball(t testing.TB) string {
	t.Helper()
	Need(t, "debootstrap", "tar", "flock")
	root := RepoRoot(t)
	start := time.Now()
	cmd := exec.Command(filepath.Join(root, "scripts", "build-test-base.sh"))
	cmd.Env = append(os.Environ(), "BATON_TOOLS="+ToolsDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/build-test-base.sh: %v\n%s", err, stderr.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Logf("debian base made in %s", d.Round(time.Second))
	}
	return strings.TrimSpace(string(out))
}

// Root unpacks the Debian base into a new temporary directory and returns
// it: a root to chroot into, removed when the test ends.
func Root(t testing.TB) string {
	t.Helper()
	tarball := BaseTarball(t)
	dir := t.TempDir()
	if out, err := exec.Command("tar", "--numeric-owner", "-C", dir, "-xf", tarball).CombinedOutput(); err != nil {
		t.Fatalf("unpack %s: %v\n%s", tarball, err, out)
	}
	return dir
}

// Chroot returns a command that runs argv inside root, as root, in new mount
// and PID namespaces with a fresh /proc, so nothing it mounts or leaves
// running outlives it. env is its whole environment.
func Chroot(ctx context.Context, root string, env []string, argv ...string) *exec.Cmd {
	chroot, err := exec.LookPath("chroot") // here, not by unshare with env's PATH
	if err != nil {
		chroot = "/usr/sbin/chroot"
	}
	args := append([]string{"--mount", "--pid", "--fork", "--mount-proc=" + filepath.Join(root, "proc"), chroot, root}, argv...)
	cmd := exec.CommandContext(ctx, "unshare", args...)
	cmd.Env = env
	return cmd
}

// Buildah runs buildah on a storage of its own under ToolsDir, with the vfs
// driver (no overlay or fuse needed) and chroot isolation.
type Buildah struct {
	bin, root, runroot string
}

// NewBuildah returns a Buildah, or skips t (see testenv.Unavailable) when buildah,
// debootstrap or root is missing.
func NewBuildah(t testing.TB) *Buildah {
	t.Helper()
	paths := Need(t, "buildah", "debootstrap", "unshare", "chroot")
	dir := filepath.Join(ToolsDir(), "buildah")
	return &Buildah{
		bin:     paths["buildah"],
		root:    filepath.Join(dir, "storage"),
		runroot: filepath.Join(dir, "run"),
	}
}

// Command returns a buildah command with the storage options set.
func (b *Buildah) Command(ctx context.Context, args ...string) *exec.Cmd {
	all := append([]string{"--root", b.root, "--runroot", b.runroot, "--storage-driver", "vfs"}, args...)
	cmd := exec.CommandContext(ctx, b.bin, all...)
	cmd.Env = append(os.Environ(), "BUILDAH_ISOLATION=chroot")
	return cmd
}

// run runs buildah and returns its trimmed stdout, or an error that carries
// its stderr.
func (b *Buildah) run(ctx context.Context, args ...string) (string, error) {
	cmd := b.Command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("buildah %s: %w\n%s", strings.Join(args, " "), err, tail(stderr.String(), 4000))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Exists reports whether the store holds the image.
func (b *Buildah) Exists(ctx context.Context, image string) bool {
	_, err := b.run(ctx, "inspect", "--type", "image", image)
	return err == nil
}

// baseMu serializes Base within one test binary; buildah's own locks cover
// other processes.
var baseMu sync.Mutex

// Base returns the name of the Debian base image, importing the tarball
// into the store when it is not there yet. Its PATH starts with
// /usr/local/go/bin, where the tests mount the host's Go for the build
// stage of the root Dockerfile.
func (b *Buildah) Base(t testing.TB) string {
	t.Helper()
	tarball := BaseTarball(t)
	name := "localhost/baton-test-base:" + strings.TrimSuffix(filepath.Base(tarball), ".tar")
	ctx := context.Background()
	baseMu.Lock()
	defer baseMu.Unlock()
	if b.Exists(ctx, name) {
		return name
	}
	start := time.Now()
	ctr, err := b.run(ctx, "from", "scratch")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = b.run(ctx, "rm", ctr) }() // after a failure; commit --rm removes it otherwise
	steps := [][]string{
		{"add", ctr, tarball, "/"},
		{"config", "--env", "PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "--cmd", "/bin/bash", ctr},
		{"commit", "--rm", ctr, name},
	}
	for _, s := range steps {
		if _, err := b.run(ctx, s...); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("imported %s into buildah's store in %s", name, time.Since(start).Round(time.Second))
	return name
}

// BuildSpec is one buildah build.
type BuildSpec struct {
	// Context is the build context directory; Dockerfile is relative to it.
	Context, Dockerfile string
	// Tag names the image built.
	Tag string
	// Args are the --build-arg values.
	Args map[string]string
	// Volumes are bind mounts for the RUN steps, as buildah's -v takes them.
	Volumes []string
}

// Build builds spec, removes the image when the test ends, and returns how
// long the build took.
func (b *Buildah) Build(t testing.TB, spec BuildSpec) time.Duration {
	t.Helper()
	args := []string{"bud", "--isolation", "chroot", "--pull=never", "--layers=false",
		"-f", filepath.Join(spec.Context, spec.Dockerfile), "-t", spec.Tag}
	for k, v := range spec.Args {
		args = append(args, "--build-arg", k+"="+v)
	}
	for _, v := range spec.Volumes {
		args = append(args, "-v", v)
	}
	args = append(args, spec.Context)
	start := time.Now()
	cmd := b.Command(context.Background(), args...)
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	t.Cleanup(func() { _, _ = b.run(context.Background(), "rmi", "-f", spec.Tag) })
	if err != nil {
		t.Fatalf("build %s: %v\n%s", spec.Dockerfile, err, tail(string(out), 8000))
	}
	return took
}

// Image is what a test reads of a built image.
type Image struct {
	Entrypoint []string `json:"Entrypoint"`
	Cmd        []string `json:"Cmd"`
	Env        []string `json:"Env"`
	WorkingDir string   `json:"WorkingDir"`
	// LayerSizes are the sizes in bytes of the image's layers, base first,
	// as the manifest states them (uncompressed tars in the vfs store).
	LayerSizes []int64 `json:"-"`
}

// Size returns the sum of the layer sizes.
func (i Image) Size() int64 {
	var n int64
	for _, s := range i.LayerSizes {
		n += s
	}
	return n
}

// Inspect returns the configuration and layer sizes of an image.
func (b *Buildah) Inspect(t testing.TB, image string) Image {
	t.Helper()
	out, err := b.run(context.Background(), "inspect", "--type", "image", image)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Manifest string
		OCIv1    struct {
			Config Image `json:"config"`
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("buildah inspect %s: %v", image, err)
	}
	var manifest struct {
		Layers []struct {
			Size int64 `json:"size"`
		} `json:"layers"`
	}
	if err := json.Unmarshal([]byte(doc.Manifest), &manifest); err != nil {
		t.Fatalf("buildah inspect %s: manifest: %v", image, err)
	}
	img := doc.OCIv1.Config
	for _, l := range manifest.Layers {
		img.LayerSizes = append(img.LayerSizes, l.Size)
	}
	return img
}

// Container is a buildah working container made from an image.
type Container struct {
	b  *Buildah
	ID string
}

// From makes a working container from image, removed when the test ends.
func (b *Buildah) From(t testing.TB, image string) *Container {
	t.Helper()
	id, err := b.run(context.Background(), "from", "--pull=never", image)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = b.run(context.Background(), "rm", id) })
	return &Container{b: b, ID: id}
}

// Mount mounts the container's root on the host and returns its path; it is
// unmounted when the container is removed.
func (c *Container) Mount(t testing.TB) string {
	t.Helper()
	dir, err := c.b.run(context.Background(), "mount", c.ID)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// RunOptions are the options of one command run in a container.
type RunOptions struct {
	// Env adds KEY=VALUE variables to the image's environment.
	Env []string
	// Volumes are bind mounts, as buildah's -v takes them.
	Volumes []string
	// Dir is the working directory; empty: the image's.
	Dir string
}

// Run returns a command that runs argv in the container with chroot
// isolation and the host's network.
func (c *Container) Run(ctx context.Context, opts RunOptions, argv ...string) *exec.Cmd {
	args := []string{"run", "--isolation", "chroot"}
	for _, e := range opts.Env {
		args = append(args, "-e", e)
	}
	for _, v := range opts.Volumes {
		args = append(args, "-v", v)
	}
	if opts.Dir != "" {
		args = append(args, "--workingdir", opts.Dir)
	}
	args = append(args, c.ID, "--")
	return c.b.Command(ctx, append(args, argv...)...)
}

// Output runs cmd and returns its stdout and stderr; err is non-nil when it
// could not start or exited with a status other than 0.
func Output(cmd *exec.Cmd) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// ExitCode returns the exit status in err (0 for nil, -1 when the command
// did not exit normally).
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// GoEnv returns `go env NAME` on the host.
func GoEnv(t testing.TB, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// FreeLoopback returns a loopback address whose port is free right now, for
// baton's metrics endpoint inside a chroot or container, which shares the
// host's network.
func FreeLoopback(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
