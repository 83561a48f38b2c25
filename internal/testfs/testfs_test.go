package testfs

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestNames(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"b", ".hidden", "a"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, want := Names(t, dir), []string{".hidden", "a", "b", "sub"}; !slices.Equal(got, want) {
		t.Errorf("Names = %q, want %q", got, want)
	}
	if got := Names(t, t.TempDir()); got != nil {
		t.Errorf("Names of an empty directory = %q, want none", got)
	}
	var f fatals
	f.TB = t
	Names(&f, filepath.Join(dir, "missing"))
	if len(f.msgs) != 1 {
		t.Errorf("Names of a missing directory failed the test %d times (%q), want once", len(f.msgs), f.msgs)
	}
}

// fatals records the calls of Fatal instead of ending the test.
type fatals struct {
	testing.TB
	msgs []string
}

func (f *fatals) Fatal(args ...any) { f.msgs = append(f.msgs, fmt.Sprint(args...)) }
