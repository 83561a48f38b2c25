// Package testenv holds the one switch that says whether a test may skip when
// something it needs is missing here: an S3 server, root, a PID namespace, a
// tool such as buildah or shellcheck. Under CI nothing may: scripts/test.sh
// sets BATON_REQUIRE_ALL=1 when CI=true, and then Unavailable fails the test
// instead of skipping it, so that a missing server or privilege never passes
// silently. Every such guard goes through this package, and nothing else
// reads the variable.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// RequireAll names the switch: set to 1, no test may skip for want of
// something.
const RequireAll = "BATON_REQUIRE_ALL"

// Required reports whether BATON_REQUIRE_ALL=1.
func Required() bool { return os.Getenv(RequireAll) == "1" }

// Unavailable skips t, saying why, or fails it when BATON_REQUIRE_ALL=1.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (%s=1: nothing may skip)", msg, RequireAll)
	}
	t.Skipf("%s (%s=1 makes this a failure)", msg, RequireAll)
}

// SkipShort skips t under -short, saying why, unless BATON_REQUIRE_ALL=1:
// then the test runs, -short or not.
func SkipShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() && !Required() {
		t.Skipf("%s; skipped with -short", why)
	}
}
