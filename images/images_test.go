package images

import (
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/internal/imagetest"
	"github.com/batonrun/baton/internal/testenv"
)

// testVersion is stamped into the test build of baton, so that the test
// knows the binary in an image is the one it built.
const testVersion = "v0.0.0-imagetest"

// Tags of the images the test builds; they are removed when it ends.
const (
	batonTag   = "localhost/baton-test/baton:latest"
	pytorchTag = "localhost/baton-test/pytorch:latest"
	slimTag    = "localhost/baton-test/slim:latest"
)

// entrypoint is what every image runs: the container's command is the trainer.
var entrypoint = []string{"/usr/local/bin/baton", "run", "--"}

// maxGlibc is the newest glibc symbol version baton may need: 2.34 keeps it
// running on Ubuntu 22.04 (glibc 2.35), the base of the CUDA and PyTorch
// images, and on Debian 12 and RHEL 9.
const maxGlibc = "2.34"

// TestImages builds the root Dockerfile on the local Debian base (the host's
// Go toolchain, module cache and build cache mounted into its build stage),
// then images/pytorch and images/slim on top of it, and runs baton inside
// both: version, doctor --json, and a training run that a second run resumes.
func TestImages(t *testing.T) {
	testenv.SkipShort(t, "image builds take minutes")
	b := imagetest.NewBuildah(t)
	repo := imagetest.RepoRoot(t)
	base := b.Base(t)

	took := b.Build(t, imagetest.BuildSpec{
		Context: repo, Dockerfile: "Dockerfile", Tag: batonTag,
		Args:    map[string]string{"GO_IMAGE": base, "VERSION": testVersion},
		Volumes: goVolumes(t),
	})
	img := b.Inspect(t, batonTag)
	t.Logf("Dockerfile: built in %s; final stage %s in %d layer(s)", took.Round(time.Second), mib(img.Size()), len(img.LayerSizes))
	if len(img.LayerSizes) != 1 {
		t.Errorf("the final stage has %d layers, want 1 (FROM scratch, COPY /baton)", len(img.LayerSizes))
	}
	bin := filepath.Join(b.From(t, batonTag).Mount(t), "baton")
	checkBinary(t, bin)

	baseSize := b.Inspect(t, base).Size()
	images := []struct {
		name, dockerfile, tag string
		// cmd is the trainer's command line without its flags: the
		// image's CMD for pytorch (which ships the examples), the mounted
		// example for slim (whose base is the user's).
		cmd     []string
		volumes []string
		// files must exist in the image; absent must not.
		files, absent []string
	}{
		{
			name: "pytorch", dockerfile: "images/pytorch/Dockerfile", tag: pytorchTag,
			cmd: []string{"python3", "/opt/baton/examples/trainer.py"},
			files: []string{"/usr/local/bin/baton", "/usr/sbin/sshd", "/usr/bin/git", "/etc/ssl/certs/ca-certificates.crt",
				"/opt/baton/examples/trainer.py", "/run/sshd", "/workspace"},
			absent: []string{"/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_ecdsa_key"},
		},
		{
			name: "slim", dockerfile: "images/slim/Dockerfile", tag: slimTag,
			cmd:     []string{"python3", "/examples/trainer.py"},
			volumes: []string{filepath.Join(repo, "examples") + ":/examples:ro"},
			files:   []string{"/usr/local/bin/baton", "/etc/ssl/certs/ca-certificates.crt"},
		},
	}
	for _, tc := range images {
		t.Run(tc.name, func(t *testing.T) {
			took := b.Build(t, imagetest.BuildSpec{
				Context: repo, Dockerfile: tc.dockerfile, Tag: tc.tag,
				Args: map[string]string{"BASE_IMAGE": base, "BATON_IMAGE": batonTag},
			})
			img := b.Inspect(t, tc.tag)
			t.Logf("%s: built in %s; %s, %s over the base", tc.dockerfile, took.Round(time.Second), mib(img.Size()), mib(img.Size()-baseSize))

			if !slices.Equal(img.Entrypoint, entrypoint) {
				t.Errorf("ENTRYPOINT %q, want %q", img.Entrypoint, entrypoint)
			}
			if tc.name == "pytorch" && !slices.Equal(img.Cmd[:min(2, len(img.Cmd))], tc.cmd) {
				t.Errorf("CMD %q, want it to start with %q", img.Cmd, tc.cmd)
			}
			if tc.name == "slim" && len(img.Cmd) != 0 {
				t.Errorf("CMD %q, want none: the trainer is the user's", img.Cmd)
			}

			ctr := b.From(t, tc.tag)
			rootfs := ctr.Mount(t)
			for _, f := range tc.files {
				if _, err := os.Lstat(filepath.Join(rootfs, f)); err != nil {
					t.Errorf("%s: %v", f, err)
				}
			}
			for _, f := range tc.absent {
				if _, err := os.Lstat(filepath.Join(rootfs, f)); err == nil {
					t.Errorf("%s is in the image: every container of it would share that host key", f)
				}
			}

			runIn(t, ctr, imagetest.RunOptions{}, 0, "baton version", func(stdout, _ string) error {
				if !strings.Contains(stdout, "baton "+testVersion+" ") {
					return fmt.Errorf("want the version %s stamped by the Dockerfile", testVersion)
				}
				return nil
			}, "baton", "version")

			checkDoctor(t, ctr)
			checkResume(t, ctr, append(slices.Clone(entrypoint), tc.cmd...), tc.volumes)
		})
	}
}

// checkBinary checks the baton binary the root Dockerfile built: a
// dynamically linked ELF (cgo, for go-nvml) that needs no newer glibc than
// maxGlibc and binds its symbols lazily (-z lazy), so that the NVML symbols it
// does not find on a host without the driver do not stop it from starting.
func checkBinary(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("the final stage's /baton: %v", err)
	}
	defer f.Close()
	if fi, err := os.Stat(path); err == nil {
		t.Logf("/baton: %s", mib(fi.Size()))
	}
	if f.Section(".interp") == nil {
		t.Errorf("/baton is statically linked; the Dockerfile builds it with cgo against glibc")
	}
	needs, err := f.DynamicVersionNeeds()
	if err != nil {
		t.Fatalf("/baton: version needs: %v", err)
	}
	newest := "0"
	for _, n := range needs {
		for _, d := range n.Needs {
			if v, ok := strings.CutPrefix(d.Dep, "GLIBC_"); ok && versionLess(newest, v) {
				newest = v
			}
		}
	}
	t.Logf("/baton needs glibc %s or newer", newest)
	if versionLess(maxGlibc, newest) {
		t.Errorf("/baton needs glibc %s; images on Ubuntu 22.04 have 2.35 and older bases %s: build it on an older Go image", newest, maxGlibc)
	}
	flags, _ := f.DynValue(elf.DT_FLAGS)
	flags1, _ := f.DynValue(elf.DT_FLAGS_1)
	for _, v := range flags {
		if elf.DynFlag(v)&elf.DF_BIND_NOW != 0 {
			t.Errorf("/baton has DF_BIND_NOW: it was not linked with -z lazy")
		}
	}
	for _, v := range flags1 {
		if elf.DynFlag1(v)&elf.DF_1_NOW != 0 {
			t.Errorf("/baton has DF_1_NOW: it was not linked with -z lazy")
		}
	}
}

// checkDoctor runs `baton doctor --json` in the image, against a file store
// inside it, and checks the report: one JSON document (schema 1) whose
// exit_code is the command's exit status, 0 here since nothing required can
// be broken (no GPU is only a warning), with a store check that passed.
func checkDoctor(t *testing.T, ctr *imagetest.Container) {
	t.Helper()
	opts := imagetest.RunOptions{Env: []string{"BATON_STORE=file:///tmp/doctor-store", "BATON_RUN_ID=imagetest"}}
	runIn(t, ctr, opts, 0, "baton doctor --json", func(stdout, _ string) error {
		var report struct {
			Schema   int `json:"schema"`
			ExitCode int `json:"exit_code"`
			Checks   []struct {
				Name, Status string
			} `json:"checks"`
		}
		if err := json.Unmarshal([]byte(stdout), &report); err != nil {
			return fmt.Errorf("stdout is not the JSON report: %w", err)
		}
		if report.Schema != 1 || report.ExitCode != 0 {
			return fmt.Errorf("schema %d, exit_code %d: want schema 1, exit_code 0", report.Schema, report.ExitCode)
		}
		for _, c := range report.Checks {
			if c.Name == "store" {
				if c.Status != "ok" {
					return fmt.Errorf("store check %s, want ok", c.Status)
				}
				return nil
			}
		}
		return fmt.Errorf("no store check in %d checks", len(report.Checks))
	}, "baton", "doctor", "--json")
}

// checkResume runs the example trainer under the image's entrypoint against a
// file store on the host: a first run trains 20 steps from scratch and
// commits; a second one, with an empty checkpoint directory as on another
// host, restores the last commit and goes on to step 30.
func checkResume(t *testing.T, ctr *imagetest.Container, argv, volumes []string) {
	t.Helper()
	store := t.TempDir()
	env := func(dir string) []string {
		return []string{
			"BATON_STORE=file:///store", "BATON_RUN_ID=imagetest", "BATON_CHECKPOINT_DIR=" + dir,
			"BATON_CHECKPOINT_INTERVAL=0", "BATON_LOG_FORMAT=text", "BATON_METRICS_ADDR=" + imagetest.FreeLoopback(t),
			"BATON_TELEMETRY_UPLOAD=0",
		}
	}
	opts := imagetest.RunOptions{Volumes: append([]string{store + ":/store"}, volumes...)}
	trainer := func(steps int) []string {
		return append(slices.Clone(argv), "--steps", strconv.Itoa(steps), "--step-seconds", "0.02", "--save-every", "5", "--model-mib", "1", "--notify")
	}

	opts.Env = env("/tmp/host-a")
	runIn(t, ctr, opts, 0, "first run", expectLines("starting fresh", "done step=20"), trainer(20)...)
	if _, err := os.Stat(filepath.Join(store, "runs", "imagetest", "latest.json")); err != nil {
		t.Fatalf("the first run committed nothing to the store: %v", err)
	}
	opts.Env = env("/tmp/host-b")
	runIn(t, ctr, opts, 0, "second run", expectLines("resumed from step=20", "done step=30"), trainer(30)...)
}

// expectLines checks the trainer's first and last lines of stdout.
func expectLines(first, last string) func(stdout, stderr string) error {
	return func(stdout, _ string) error {
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		if lines[0] != first || lines[len(lines)-1] != last {
			return fmt.Errorf("trainer printed %q … %q, want %q … %q", lines[0], lines[len(lines)-1], first, last)
		}
		return nil
	}
}

// runIn runs argv in the container, wants exit status want (-1: any), and
// hands stdout and stderr to check.
func runIn(t *testing.T, ctr *imagetest.Container, opts imagetest.RunOptions, want int, what string, check func(stdout, stderr string) error, argv ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	stdout, stderr, err := imagetest.Output(ctr.Run(ctx, opts, argv...))
	code := imagetest.ExitCode(err)
	t.Logf("%s: exit %d in %s", what, code, time.Since(start).Round(10*time.Millisecond))
	if want >= 0 && code != want {
		t.Fatalf("%s: %v, want exit %d\nstdout:\n%s\nstderr:\n%s", what, err, want, stdout, stderr)
	}
	if err := check(stdout, stderr); err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", what, err, stdout, stderr)
	}
}

// goVolumes mounts the host's Go toolchain, module cache and build cache into
// the build stage of the root Dockerfile, where golang:1.26-bookworm would
// have them, so that the build reuses what the host compiled. It needs no
// network only if the module cache holds every module of baton's go.sum: the
// Dockerfile's `RUN go mod download` wants them all, also those no Linux
// build needs (gopsutil's purego is for macOS), which a cache filled by
// `go build` alone lacks. scripts/test.sh runs `go mod download` first; run
// it yourself before `go test ./images` on a fresh machine.
func goVolumes(t *testing.T) []string {
	t.Helper()
	return []string{
		imagetest.GoEnv(t, "GOROOT") + ":/usr/local/go:ro",
		imagetest.GoEnv(t, "GOMODCACHE") + ":/root/go/pkg/mod",
		imagetest.GoEnv(t, "GOCACHE") + ":/root/.cache/go-build",
	}
}

// versionLess compares dotted version numbers: 2.9 < 2.34.
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func TestVersionLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"2.9", "2.34", true}, {"2.34", "2.9", false}, {"2.34", "2.34", false},
		{"2.3.2", "2.3.4", true}, {"2.3", "2.3.2", true}, {"0", "2.2.5", true},
	} {
		if got := versionLess(tc.a, tc.b); got != tc.want {
			t.Errorf("versionLess(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

// mib formats a byte count in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
