package filetest

import (
	"path/filepath"
	"testing"
)

func TestNewAndOpen(t *testing.T) {
	a, b := New(t), New(t)
	if a.Root() == b.Root() {
		t.Errorf("two New stores share the root %s", a.Root())
	}
	dir := t.TempDir()
	if got := Open(t, filepath.Join(dir, "x", "..", "store")).Root(); got != filepath.Join(dir, "store") {
		t.Errorf("Open(%s/x/../store).Root() = %s, want %s/store", dir, got, dir)
	}
}
