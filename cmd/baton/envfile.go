package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/batonrun/baton/agent/config"
)

// baton run --env-file PATH: the keys reach baton in a file that it reads
// at start and deletes at once, instead of a file that stays on the disk
// (Vast.ai's advice, `env >> /etc/environment`, writes every secret of the
// instance there in plain text; docs/run.md, "Secrets").

// envFile is what --env-file gave: the variables it added to baton's
// environment, the path and a warning to log.
type envFile struct {
	path    string
	added   []string // the names taken from the file
	kept    []string // the names the environment already set, which keep their value
	warning string   // the file was readable by others than its owner
}

// loadEnvFile finds --env-file (a flag, BATON_ENV_FILE or env_file in the
// --config file) in args, reads it into e's environment, and deletes it.
// Without one it returns e unchanged and a nil envFile. A setting that does
// not parse is left for the settings' own check to report.
func (e env) loadEnvFile(args []string) (env, *envFile, error) {
	var pre config.Config
	if _, err := config.LoadInto(&pre, args, e.getenv, os.ReadFile); err != nil || pre.EnvFile == "" {
		return e, nil, nil
	}
	vars, warning, err := consumeEnvFile(pre.EnvFile)
	if err != nil {
		return e, nil, usagef("--env-file: %v", err)
	}
	ef := &envFile{path: pre.EnvFile, warning: warning}
	out := e
	out.environ = append([]string(nil), e.environ...)
	set := map[string]string{}
	for _, kv := range e.environ {
		name, value, _ := strings.Cut(kv, "=")
		set[name] = value
	}
	for _, kv := range vars {
		name, value, _ := strings.Cut(kv, "=")
		if _, ok := set[name]; ok {
			ef.kept = append(ef.kept, name)
			continue
		}
		set[name] = value
		out.environ = append(out.environ, kv)
		ef.added = append(ef.added, name)
	}
	getenv := e.getenv
	out.getenv = func(name string) string {
		if v, ok := set[name]; ok {
			return v
		}
		return getenv(name)
	}
	return out, ef, nil
}

// consumeEnvFile reads path's variables and deletes the file; a file that
// does not parse is deleted all the same, since it may hold keys. The
// warning says that the file was readable by others than its owner.
func consumeEnvFile(path string) (vars []string, warning string, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("%s does not exist (baton deletes it once it has read it: give it again to start baton run again)", path)
		}
		return nil, "", err
	}
	if !fi.Mode().IsRegular() {
		return nil, "", fmt.Errorf("%s is not a regular file", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	if err := os.Remove(path); err != nil {
		return nil, "", fmt.Errorf("deleting %s after reading it: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		warning = fmt.Sprintf("the --env-file %s was readable by others than its owner (mode %#o) until baton deleted it: create it with mode 0600", path, fi.Mode().Perm())
	}
	vars, err = parseEnvFile(data)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	return vars, warning, nil
}

// parseEnvFile reads NAME=value lines: blank lines and lines that start
// with # are skipped, an "export " before the name is dropped, and a value
// wholly inside single or double quotes loses them (nothing within is
// interpreted). An error names the line, never its value.
func parseEnvFile(data []byte) ([]string, error) {
	var vars []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(strings.TrimSuffix(sc.Text(), "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimSpace(strings.TrimPrefix(line, "export "))
		name, value, ok := strings.Cut(line, "=")
		name = strings.TrimSpace(name)
		if !ok || !validName(name) {
			return nil, fmt.Errorf("line %d is not NAME=value", n)
		}
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
			value = value[1 : len(value)-1]
		}
		vars = append(vars, name+"="+value)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return vars, nil
}

// validName reports whether name is a shell variable's name: a letter or
// underscore, then letters, digits and underscores.
func validName(name string) bool {
	for i, c := range name {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return name != ""
}
