package checkpoint_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/sync/storage"
)

// TestRuns lists the runs of a store that have a checkpoint, and no more
// than the limit of objects allows.
func TestRuns(t *testing.T) {
	s := newStore(t)
	r, lease := acquireOn(t, s, "a", time.Now)
	commitTree(t, r, lease, map[string][]byte{"model.pt": content(1000, 1)})
	other, err := checkpoint.Open(s, checkpoint.Options{Run: "zz-other", Holder: checkpoint.Holder{ID: "b"}, Logger: quiet, Retry: fastRetry()})
	if err != nil {
		t.Fatal(err)
	}
	olease, err := other.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	commitTree(t, other, olease, map[string][]byte{"w.bin": content(10, 2)})
	// A run with objects but no latest.json has no checkpoint.
	if _, err := s.Put(t.Context(), "runs/m-nothing/logs/x", storage.BytesPayload([]byte("x")), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}

	got, err := checkpoint.Runs(t.Context(), s, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{testRun, "zz-other"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Runs = %q, want %q", got, want)
	}
	got, err = checkpoint.Runs(t.Context(), s, 1)
	if err != nil || len(got) > 1 {
		t.Errorf("Runs with a limit of one object = %q, %v", got, err)
	}
}
