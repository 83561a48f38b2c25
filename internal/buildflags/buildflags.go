// Package buildflags holds the settings every build of baton needs (cgo on,
// cgo's warnings about go-nvml's deprecated declarations off, NVML's symbols
// bound lazily) for the Go code that builds the binary: the tests that run
// the real baton. The settings live in flags.env, which this package embeds
// and the scripts source (scripts/build.sh, scripts/test.sh, the Makefile and
// the Dockerfile through them), so there is one copy of them.
package buildflags

import (
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

//go:embed flags.env
var flagsEnv string

// Package is the import path of baton's command.
const Package = "github.com/batonrun/baton/cmd/baton"

// ldflagsName is the variable of flags.env that holds the -ldflags value;
// every other one is an environment variable of the build.
const ldflagsName = "BATON_LDFLAGS"

// Vars returns the NAME=value lines of flags.env in order, comments and
// blank lines left out.
func Vars() [][2]string {
	var vars [][2]string
	for line := range strings.Lines(flagsEnv) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			panic("buildflags: flags.env: not NAME=value: " + line)
		}
		vars = append(vars, [2]string{name, value})
	}
	return vars
}

// Env returns the build's environment variables (CGO_ENABLED, CGO_CFLAGS) as
// NAME=value, to append to os.Environ().
func Env() []string {
	var env []string
	for _, v := range Vars() {
		if v[0] != ldflagsName {
			env = append(env, v[0]+"="+v[1])
		}
	}
	return env
}

// LDFlags returns the value of go build's -ldflags: extra (e.g. "-X",
// "main.version=v1.2.3"), then the linker flags every build needs.
func LDFlags(extra ...string) string {
	for _, v := range Vars() {
		if v[0] == ldflagsName {
			return strings.TrimSpace(strings.Join(extra, " ") + " " + v[1])
		}
	}
	panic("buildflags: flags.env has no " + ldflagsName)
}

// Command returns `go build -ldflags ... -o out` of cmd/baton with the
// build's environment. It must run inside baton's module (a test's working
// directory is).
func Command(out string, ldflags ...string) *exec.Cmd {
	cmd := exec.Command("go", "build", "-ldflags="+LDFlags(ldflags...), "-o", out, Package)
	cmd.Env = append(os.Environ(), Env()...)
	return cmd
}

// Build builds cmd/baton into out (see Command); the error carries go
// build's output.
func Build(out string, ldflags ...string) error {
	if b, err := Command(out, ldflags...).CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", Package, err, b)
	}
	return nil
}
