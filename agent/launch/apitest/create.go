package apitest

import (
	"errors"
	"testing"

	"github.com/batonrun/baton/agent/launch"
)

// WantCreateError fails t unless err is the error of a create that failed,
// wrapping launch.ErrUncertain exactly when uncertain: the provider's
// answer was lost or a 5xx, so the machine may exist.
func WantCreateError(t testing.TB, err error, uncertain bool) {
	t.Helper()
	if err == nil || errors.Is(err, launch.ErrUncertain) != uncertain {
		t.Fatalf("Create error %v, want uncertain %v", err, uncertain)
	}
}
