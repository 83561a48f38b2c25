package agent_test

import (
	"encoding/json"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// logRun runs baton on the example trainer with --log-format=format, stops
// it with SIGTERM once the trainer is at step 20, and returns baton's log
// lines (stderr without the trainer's own lines).
func logRun(t *testing.T, bin, format string) []string {
	t.Helper()
	trainer := trainerPath(t)
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0") // a free port for the metrics endpoint
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	h := host{dir: dir, env: baseEnv("BATON_METRICS_ADDR=" + l.Addr().String())}
	s := startRun(t, bin, h, "--store", "file://"+filepath.Join(dir, "store"), "--run", "logs",
		"--checkpoint-dir", filepath.Join(dir, "ckpt"), "--checkpoint-interval", "0", "--grace", "5s", "--log-format", format, "--",
		"python3", trainer, "--steps", "100000", "--step-seconds", "0.01", "--save-every", "1000")
	s.waitFor(t, "step 20", func(l string) bool { return strings.HasPrefix(l, "step=20 ") })
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, _ := s.wait(t); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, s.stderr)
	}
	var lines []string
	for l := range strings.SplitSeq(s.stderr.String(), "\n") {
		if strings.HasPrefix(l, "time=") || strings.HasPrefix(l, "{") {
			lines = append(lines, l)
		}
	}
	return lines
}

// oneLineEach fails unless each event of once is logged by exactly one
// line (a message that begins with it), and "lease released" is among them.
func oneLineEach(t *testing.T, msgs []string, log string) {
	t.Helper()
	for _, event := range []string{"metrics endpoint", "trainer started", "stop requested", "trainer exited", "lease released", "run ended"} {
		n := 0
		for _, m := range msgs {
			if strings.HasPrefix(m, event) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d lines for %q, want one:\n%s", n, event, log)
		}
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		if seen[m] && !strings.HasPrefix(m, "checkpoint committed") {
			t.Errorf("%q logged twice:\n%s", m, log)
		}
		seen[m] = true
	}
}

// textAttr is one key=value of slog's text format; the value is quoted
// when it has spaces or quotes.
var textAttr = regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S*)`)

// TestLogsAPersonCanRead: a short run stopped by SIGTERM, in text, logs
// each event once (the metrics endpoint, the stop, the trainer's exit), says
// that it released the lease, and writes sizes and durations with units, no
// raw nanoseconds; in JSON, durations are numbers of seconds or
// milliseconds under keys that say so, never duration strings.
func TestLogsAPersonCanRead(t *testing.T) {
	bin := buildBaton(t)
	t.Run("text", func(t *testing.T) {
		t.Parallel()
		lines := logRun(t, bin, "text")
		log := strings.Join(lines, "\n")
		var msgs []string
		for _, l := range lines {
			attrs := map[string]string{}
			for _, m := range textAttr.FindAllStringSubmatch(l, -1) {
				v := m[2]
				if u, err := strconv.Unquote(v); err == nil {
					v = u
				}
				attrs[m[1]] = v
			}
			msgs = append(msgs, attrs["msg"])
			for k, v := range attrs {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 1_000_000 && k != "pid" && k != "pgid" {
					t.Errorf("%s=%s looks like a raw count of nanoseconds or bytes: %s", k, v, l)
				}
				if (k == "bytes" || strings.HasSuffix(k, "_bytes")) && !strings.HasSuffix(v, "B") {
					t.Errorf("%s=%s is not a size: %s", k, v, l)
				}
				if strings.HasSuffix(k, "_s") && !strings.HasSuffix(k, "_per_s") {
					if _, err := time.ParseDuration(v); err != nil {
						t.Errorf("%s=%s is not a duration: %s", k, v, l)
					}
				}
			}
			if attrs["msg"] == "checkpoint committed" && attrs["took_s"] == "" {
				t.Errorf("no took_s in %s", l)
			}
		}
		oneLineEach(t, msgs, log)
		if !strings.Contains(log, `msg="trainer exited" pid=`) || !strings.Contains(log, "stopped=true escalated=false attempt=0") {
			t.Errorf("the trainer's exit line lacks its attributes:\n%s", log)
		}
		if !regexp.MustCompile(`msg="metrics endpoint" url=http://127\.0\.0\.1:\d+/metrics token_required=false`).MatchString(log) {
			t.Errorf("no metrics endpoint line with its URL:\n%s", log)
		}
	})
	t.Run("json", func(t *testing.T) {
		t.Parallel()
		lines := logRun(t, bin, "json")
		log := strings.Join(lines, "\n")
		var msgs []string
		units := map[string]bool{}
		for _, l := range lines {
			var rec map[string]any
			if err := json.Unmarshal([]byte(l), &rec); err != nil {
				t.Fatalf("not JSON: %s", l)
			}
			msgs = append(msgs, rec["msg"].(string))
			for k, v := range rec {
				switch x := v.(type) {
				case string:
					if _, err := time.ParseDuration(x); err == nil {
						t.Errorf("%q: %q is a duration string; want a number under a key ending in _s or _ms: %s", k, x, l)
					}
				case float64:
					if x >= 1e9 && !strings.Contains(k, "bytes") && k != "pid" {
						t.Errorf("%q: %v looks like nanoseconds: %s", k, x, l)
					}
				}
				if strings.HasSuffix(k, "_s") || strings.HasSuffix(k, "_ms") || strings.HasSuffix(k, "bytes") {
					units[k] = true
					if _, ok := v.(float64); !ok {
						t.Errorf("%q: %v is not a number: %s", k, v, l)
					}
				}
			}
		}
		for _, k := range []string{"took_s", "bytes", "new_bytes", "grace_s", "stop_window_s", "estimate_s", "rate_bytes_per_s"} {
			if !units[k] {
				t.Errorf("no %s in the log:\n%s", k, log)
			}
		}
		oneLineEach(t, msgs, log)
	})
}
