package buildflags

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestOneCopy fails when a file of the repository other than flags.env
// spells out one of its flags (a script, test, Dockerfile or doc that builds
// with a copy of its own, which drifts): they source flags.env, run
// scripts/build.sh or make build, or call this package.
func TestOneCopy(t *testing.T) {
	t.Parallel()
	var flags []string
	for _, v := range Vars() {
		// BATON_LDFLAGS: the linker flag after -extldflags=, however it is passed.
		f := v[1][strings.LastIndex(v[1], "=")+1:]
		if len(f) > 3 {
			flags = append(flags, f)
		}
	}
	if len(flags) < 2 {
		t.Fatalf("flags.env yields %q, want the C and the linker flag", flags)
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	self, _ := filepath.Abs("flags.env")
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if path == self || !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.IndexByte(data[:min(len(data), 8000)], 0) >= 0 {
			return nil // a binary: a build output, whose build info records its -ldflags
		}
		for _, f := range flags {
			if bytes.Contains(data, []byte(f)) {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s spells out %s: build with scripts/build.sh, make build or package buildflags, or source internal/buildflags/flags.env", rel, f)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestShellAndMake checks that sh and make read flags.env as this package
// does.
func TestShellAndMake(t *testing.T) {
	t.Parallel()
	var want []string
	for _, v := range Vars() {
		want = append(want, v[0]+"="+v[1])
	}
	out, err := exec.Command("env", "-i", "/bin/sh", "-c", "set -a && . ./flags.env && env").Output()
	if err != nil {
		t.Fatalf("sh: . ./flags.env: %v", err)
	}
	var got []string
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSuffix(line, "\n")
		name, _, _ := strings.Cut(line, "=")
		if slices.ContainsFunc(want, func(w string) bool { return strings.HasPrefix(w, name+"=") }) {
			got = append(got, line)
		}
	}
	slices.Sort(got)
	sorted := slices.Sorted(slices.Values(want))
	if !slices.Equal(got, sorted) {
		t.Errorf("sh reads %q, want %q", got, sorted)
	}

	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make here")
	}
	makefile := "include flags.env\n"
	for _, v := range Vars() {
		makefile += "$(info " + v[0] + "=$(" + v[0] + "))\n"
	}
	makefile += "all: ;@:\n"
	cmd := exec.Command("make", "-s", "-f", "-")
	cmd.Stdin = strings.NewReader(makefile)
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("make: include flags.env: %v", err)
	}
	if got := strings.Fields(string(out)); !slices.Equal(got, want) {
		t.Errorf("make reads %q, want %q", got, want)
	}
}

func TestLDFlags(t *testing.T) {
	t.Parallel()
	got := LDFlags("-X", "main.version=v1")
	if !strings.HasPrefix(got, "-X main.version=v1 -") || strings.Contains(got, "  ") {
		t.Errorf("LDFlags(-X main.version=v1) = %q", got)
	}
	if env := Env(); len(env) != len(Vars())-1 || !slices.Contains(env, "CGO_ENABLED=1") {
		t.Errorf("Env() = %q", env)
	}
}
