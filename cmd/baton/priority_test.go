package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/batonrun/baton/internal/priority"
)

// TestLowerSelf: a command lowers the whole process to its --nice (no
// thread kept: it starts no trainer), not at all at 0 or without e.lower,
// and warns once where the platform refuses.
func TestLowerSelf(t *testing.T) {
	var calls []string
	var stderr strings.Builder
	e := env{stderr: &stderr, lower: func(nice int, keep ...*priority.Thread) (priority.Lowered, error) {
		calls = append(calls, strings.Repeat("k", len(keep))+string(rune('0'+nice%10)))
		if nice == 18 {
			return priority.Lowered{}, errors.New("operation not permitted")
		}
		return priority.Lowered{Nice: nice}, nil
	}}
	e.lowerSelf("checkpoint commit", 19)
	e.lowerSelf("checkpoint commit", 0)
	if strings.Join(calls, ",") != "9" || stderr.Len() != 0 {
		t.Errorf("calls %q, stderr %q; want one call with 19 and no keep, no warning", calls, stderr.String())
	}
	e.lowerSelf("checkpoint commit", 18)
	if want := "baton checkpoint commit: warning: cannot lower its priority, it competes with the trainer for the CPU: operation not permitted\n"; stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	env{stderr: &stderr}.lowerSelf("checkpoint commit", 19) // tests' env: nothing happens
}
