package transfer_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/batonrun/baton/sync/transfer"
)

// TestEmptySource: a pull from a prefix with no object, or a push of a
// directory with no file, is an error that writes nothing, unless
// AllowEmpty.
func TestEmptySource(t *testing.T) {
	s := newFileStore(t)
	dst := filepath.Join(t.TempDir(), "imagenet")
	_, err := transfer.New(transfer.Options{}).Pull(t.Context(), s, dst)
	if !errors.Is(err, transfer.ErrEmptySource) {
		t.Fatalf("pull of an empty store: %v, want ErrEmptySource", err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the failed pull made %s: %v", dst, err)
	}
	empty := t.TempDir()
	if _, err := transfer.New(transfer.Options{}).Push(t.Context(), empty, s); !errors.Is(err, transfer.ErrEmptySource) {
		t.Errorf("push of an empty directory: %v, want ErrEmptySource", err)
	}

	allow := transfer.New(transfer.Options{AllowEmpty: true})
	if st, err := allow.Pull(t.Context(), s, dst); err != nil || st.Files != 0 {
		t.Errorf("pull with AllowEmpty: %+v, %v", st, err)
	}
	if st, err := allow.Push(t.Context(), empty, s); err != nil || st.Files != 0 {
		t.Errorf("push with AllowEmpty: %+v, %v", st, err)
	}
}
