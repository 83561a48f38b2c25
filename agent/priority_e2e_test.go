package agent_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonrun/baton/internal/priority"
)

// TestTrainerKeepsBatonsStartingPriority runs the real binary with a
// trainer that reports its own niceness and that of each of baton's
// threads (/proc/PID/stat, field 19). With the default --nice, every thread
// of baton but one (the one the trainer was forked on) is at 19 and the
// trainer at the niceness baton started with; with --nice 0 nothing is
// lowered. Compared with the test's own niceness, not 0: CI runs as root,
// which could start anywhere.
func TestTrainerKeepsBatonsStartingPriority(t *testing.T) {
	start, err := priority.Nice(0)
	if err != nil {
		t.Fatal(err)
	}
	if start >= priority.MaxNice {
		t.Skipf("the test runs at nice %d: nothing to lower", start)
	}
	bin := buildBaton(t)
	const trainer = `read -r _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ n _ </proc/self/stat
echo "trainer $n"
for d in /proc/$PPID/task/*; do
  read -r _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ n _ <"$d/stat" && echo "baton ${d##*/} $n"
done`
	for _, c := range []struct{ flag string }{{"--nice=19"}, {"--nice=0"}} {
		t.Run(c.flag, func(t *testing.T) {
			dir := t.TempDir()
			code, lines, stderr := runToEnd(t, bin, host{env: baseEnv(), dir: dir}, "--store", "file://"+filepath.Join(dir, "store"),
				"--run", "nice", "--checkpoint-dir", filepath.Join(dir, "ckpt"), "--checkpoint-interval", "0",
				"--metrics-addr=", "--telemetry-interval=0", c.flag, "--", "sh", "-c", trainer)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			trainerNice, atStart, at19 := -100, 0, 0
			for _, l := range lines {
				var tid, n int
				if _, err := fmt.Sscanf(l, "trainer %d", &n); err == nil {
					trainerNice = n
				} else if _, err := fmt.Sscanf(l, "baton %d %d", &tid, &n); err == nil {
					switch n {
					case start:
						atStart++
					case priority.MaxNice:
						at19++
					default:
						t.Errorf("baton's thread %d at nice %d, want %d or %d", tid, n, start, priority.MaxNice)
					}
				}
			}
			t.Logf("trainer at nice %d; baton's threads: %d at %d, %d at 19", trainerNice, atStart, start, at19)
			if trainerNice != start {
				t.Errorf("trainer at nice %d, want %d (baton's start)\n%s", trainerNice, start, strings.Join(lines, "\n"))
			}
			if c.flag == "--nice=19" && (atStart != 1 || at19 == 0) {
				t.Errorf("baton's threads: %d at %d, %d at 19; want one (the trainer's) at %d and the rest at 19", atStart, start, at19, start)
			}
			if c.flag == "--nice=0" && (at19 != 0 || atStart == 0) {
				t.Errorf("baton's threads: %d at %d, %d at 19; want all at %d", atStart, start, at19, start)
			}
			if c.flag == "--nice=19" && !strings.Contains(stderr, "baton's own work runs below the trainer's") {
				t.Errorf("no log line of the lowering:\n%s", stderr)
			}
		})
	}
}
