package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestParseEnvFile: NAME=value lines, comments and blank lines skipped, an
// export dropped, outer quotes removed and nothing else interpreted; a bad
// line is named by its number, never by its text.
func TestParseEnvFile(t *testing.T) {
	got, err := parseEnvFile([]byte("# c\n\n  export A=1\nB='x y'\nC=\"a=b#c\"\r\nD=\nE=it's\n_F9=\"q\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A=1", "B=x y", "C=a=b#c", "D=", "E=it's", `_F9="q`}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"A=1\nsecret-value-no-name\n", "A=1\n9X=secret-value\n", "A=1\nBAD NAME=secret-value\n"} {
		_, err := parseEnvFile([]byte(bad))
		if err == nil || !strings.Contains(err.Error(), "line 2") || strings.Contains(err.Error(), "secret-value") {
			t.Errorf("%q: error %v, want one naming line 2 without its text", bad, err)
		}
	}
}

// TestLoadEnvFile: the file's variables join the environment (those the
// environment sets keep their value), the file is gone, and a file others
// could read draws a warning; a missing file is a usage error.
func TestLoadEnvFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "env")
	if err := os.WriteFile(path, []byte("NEW=from-file\nOLD=from-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := env{getenv: func(name string) string {
		if name == "OLD" {
			return "from-env"
		}
		return ""
	}, environ: []string{"OLD=from-env"}}
	e, ef, err := base.loadEnvFile([]string{"--env-file", path, "--", "true"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the file is still there: %v", err)
	}
	if e.getenv("NEW") != "from-file" || e.getenv("OLD") != "from-env" || !slices.Equal(e.environ, []string{"OLD=from-env", "NEW=from-file"}) {
		t.Errorf("environment %q, NEW=%q OLD=%q", e.environ, e.getenv("NEW"), e.getenv("OLD"))
	}
	if !slices.Equal(ef.added, []string{"NEW"}) || !slices.Equal(ef.kept, []string{"OLD"}) || !strings.Contains(ef.warning, "0600") {
		t.Errorf("added %q, kept %q, warning %q", ef.added, ef.kept, ef.warning)
	}
	if _, _, err := base.loadEnvFile([]string{"--env-file", path, "--", "true"}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("a second read: %v, want an error saying the file does not exist", err)
	}
	same, ef, err := base.loadEnvFile([]string{"--", "true"})
	if err != nil || ef != nil || !slices.Equal(same.environ, base.environ) {
		t.Errorf("without --env-file: %v %v %q", err, ef, same.environ)
	}
}

// TestBackgroundArgs: the background baton gets neither --detach nor
// --env-file (the file is gone; its variables are in the environment), and
// the trainer's arguments are left alone.
func TestBackgroundArgs(t *testing.T) {
	got := backgroundArgs([]string{"--detach", "--env-file", "/root/e", "--run", "r", "-env-file=/x", "--detach=true", "--",
		"train", "--detach", "--env-file", "y"})
	want := []string{"--run", "r", "--", "train", "--detach", "--env-file", "y"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
