package storage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/batonrun/baton/sync/storage"
)

func TestCheckKey(t *testing.T) {
	cases := []struct {
		key string
		ok  bool
	}{
		{"a", true}, {"a/b/c.bin", true}, {"with space/ünï 文件", true}, {"trailing.dot.", true}, {"..a/b..", true},
		{"", false}, {"/abs", false}, {"a/../b", false}, {"..", false}, {".", false}, {"./a", false},
		{"a//b", false}, {"dir/", false}, {"nul\x00byte", false}, {"bad\xffutf8", false}, {strings.Repeat("k", 1025), false},
	}
	for _, c := range cases {
		err := storage.CheckKey(c.key)
		if (err == nil) != c.ok {
			t.Errorf("CheckKey(%q) = %v, want ok=%v", c.key, err, c.ok)
		}
		if err != nil && !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("CheckKey(%q) = %v, not ErrInvalid", c.key, err)
		}
	}
}

func TestErrorWrapsKindAndCause(t *testing.T) {
	err := fmt.Errorf("pull: %w", &storage.Error{Op: "get", Key: "a b", Kind: storage.ErrNotFound, Err: io.ErrUnexpectedEOF})
	if !errors.Is(err, storage.ErrNotFound) || !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, storage.ErrTransient) {
		t.Fatalf("errors.Is does not see exactly the kind and the cause in %v", err)
	}
	if want := `pull: get "a b": not found: unexpected EOF`; err.Error() != want {
		t.Fatalf("message %q, want %q", err.Error(), want)
	}
}

func TestRetry(t *testing.T) {
	transient := &storage.Error{Op: "get", Kind: storage.ErrTransient}
	unreachable := &storage.Error{Op: "get", Kind: storage.ErrUnreachable}
	denied := &storage.Error{Op: "get", Kind: storage.ErrPermission}
	cases := []struct {
		name      string
		errs      []error // what the op returns on each try; nil after the list ends
		wantTries int
		wantErr   error
	}{
		{"success at once", nil, 1, nil},
		{"transient then success", []error{transient, transient}, 3, nil},
		{"permanent stops at once", []error{denied, nil}, 1, storage.ErrPermission},
		{"transient until attempts run out", repeat(transient, 20), 5, storage.ErrTransient},
		{"unreachable has its own lower cap", repeat(unreachable, 20), 2, storage.ErrUnreachable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var waits []time.Duration
			r := storage.Retry{Attempts: 5, UnreachableAttempts: 2, Base: 100 * time.Millisecond, Max: 300 * time.Millisecond,
				Sleep: func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return nil }}
			tries := 0
			err := r.Do(t.Context(), func(context.Context) error {
				tries++
				if tries <= len(c.errs) {
					return c.errs[tries-1]
				}
				return nil
			})
			if tries != c.wantTries {
				t.Errorf("%d tries, want %d", tries, c.wantTries)
			}
			if (c.wantErr == nil) != (err == nil) || (c.wantErr != nil && !errors.Is(err, c.wantErr)) {
				t.Errorf("error %v, want %v", err, c.wantErr)
			}
			if len(waits) != tries-1 {
				t.Errorf("%d waits for %d tries", len(waits), tries)
			}
			for i, w := range waits {
				ceiling := min(100*time.Millisecond<<i, 300*time.Millisecond)
				if w < 0 || w > ceiling {
					t.Errorf("wait %d is %v, want within [0, %v]", i, w, ceiling)
				}
			}
		})
	}
}

func TestRetryStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	tries := 0
	err := storage.DefaultRetry().Do(ctx, func(context.Context) error {
		tries++
		cancel()
		return &storage.Error{Op: "put", Kind: storage.ErrTransient}
	})
	if tries != 1 || !errors.Is(err, storage.ErrTransient) {
		t.Fatalf("%d tries, error %v; want 1 try once the context ended", tries, err)
	}
}

func TestPayloadRereads(t *testing.T) {
	p := storage.BytesPayload([]byte("0123456789"))
	for range 2 {
		b, err := io.ReadAll(p.Reader())
		if err != nil || string(b) != "0123456789" || p.Size() != 10 {
			t.Fatalf("read %q, %v", b, err)
		}
	}
	w := storage.NewPayload(strings.NewReader("0123456789"), 3, 4)
	if b, _ := io.ReadAll(w.Reader()); string(b) != "3456" {
		t.Fatalf("window read %q, want 3456", b)
	}
}

func repeat(err error, n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}
