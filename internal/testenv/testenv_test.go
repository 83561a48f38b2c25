package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestUnavailable runs a test that calls Unavailable in a child process,
// with and without the switch: it skips, or it fails.
func TestUnavailable(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") == "1" {
		Unavailable(t, "no frobnicator")
		return
	}
	for _, c := range []struct {
		value string
		fail  bool
	}{{"", false}, {"0", false}, {"1", true}} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestUnavailable$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTENV_CHILD=1", RequireAll+"="+c.value)
		out, err := cmd.CombinedOutput()
		if failed := err != nil; failed != c.fail || !strings.Contains(string(out), "no frobnicator") {
			t.Errorf("%s=%q: err %v, want failure %v:\n%s", RequireAll, c.value, err, c.fail, out)
		}
	}
}

// TestOneSwitch fails when a tracked file reads the switch itself or names
// one of the switches it replaced: every guard goes through Unavailable.
func TestOneSwitch(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git to list the repository's files")
	}
	old := []string{"BATON_REQUIRE_" + "S3", "BATON_REQUIRE_" + "IMAGES", `Getenv("` + RequireAll, "Getenv(" + "testenv."}
	args := []string{"grep", "-n", "--fixed-strings"}
	for _, o := range old {
		args = append(args, "-e", o)
	}
	cmd := exec.Command("git", append(args, "--", "../..")...)
	out, err := cmd.Output()
	if err == nil {
		t.Errorf("guards that do not go through testenv.Unavailable:\n%s", out)
	} else if cmd.ProcessState.ExitCode() != 1 { // 1: no match
		t.Skipf("git grep: %v", err)
	}
}
