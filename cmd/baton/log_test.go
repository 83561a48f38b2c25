package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestHumanHandler: in text, numbers keyed by their unit read as sizes and
// durations; every other attribute, and JSON, stay as logged.
func TestHumanHandler(t *testing.T) {
	cases := []struct {
		name string
		attr slog.Attr
		want string // in the text line
	}{
		{"bytes", slog.Int64("bytes", 1536), "bytes=\"1.5 KiB\""},
		{"suffix bytes", slog.Int64("new_bytes", 8388915), "new_bytes=\"8.0 MiB\""},
		{"small bytes", slog.Int("changed_bytes", 12), "changed_bytes=\"12 B\""},
		{"uint bytes", slog.Uint64("max_buffered_bytes", 64<<20), "max_buffered_bytes=\"64.0 MiB\""},
		{"rate", slog.Int64("rate_bytes_per_s", 50<<20), "rate_bytes_per_s=\"50.0 MiB/s\""},
		{"seconds float", slog.Float64("grace_s", 2.5), "grace_s=2.5s"},
		{"seconds int", slog.Int("stop_window_s", 90), "stop_window_s=1m30s"},
		{"seconds sub-ms", slog.Float64("took_s", 0.0641234), "took_s=64ms"},
		{"seconds long", slog.Float64("waiting_at_most_s", 3725.4), "waiting_at_most_s=1h2m5s"},
		{"zero seconds", slog.Float64("in_s", 0), "in_s=0s"},
		{"milliseconds", slog.Int64("took_ms", 1500), "took_ms=1.5s"},
		{"not a unit", slog.Int("files", 5), "files=5"},
		{"a word ending in s", slog.Int("keys", 3), "keys=3"},
		{"string with unit key", slog.String("eta_s", "soon"), "eta_s=soon"},
		{"bool", slog.Bool("pid1_s", true), "pid1_s=true"},
		{"group", slog.Group("telemetry", slog.Int64("stored_bytes", 2048), slog.Float64("lag_s", 1.25)), "telemetry.stored_bytes=\"2.0 KiB\" telemetry.lag_s=1.25s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var text, js bytes.Buffer
			slog.New(formatLogHandler(&text, "text", nil)).LogAttrs(t.Context(), slog.LevelInfo, "m", c.attr)
			if !strings.Contains(text.String(), " "+c.want+"\n") {
				t.Errorf("text: %q, want it to end in %q", text.String(), c.want)
			}
			slog.New(formatLogHandler(&js, "json", nil)).LogAttrs(t.Context(), slog.LevelInfo, "m", c.attr)
			var plain bytes.Buffer
			slog.New(slog.NewJSONHandler(&plain, nil)).LogAttrs(t.Context(), slog.LevelInfo, "m", c.attr)
			if tail(js.String()) != tail(plain.String()) {
				t.Errorf("json: %s, want it untouched: %s", js.String(), plain.String())
			}
		})
	}
}

// tail is a JSON log line without its time.
func tail(line string) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return "not JSON: " + line
	}
	delete(m, "time")
	b, _ := json.Marshal(m)
	return string(b)
}

// TestHumanHandlerWithAttrs: attributes bound with With and a group read
// the same, and credentials are still removed.
func TestHumanHandlerWithAttrs(t *testing.T) {
	var text bytes.Buffer
	log := slog.New(formatLogHandler(&text, "text", nil)).With("lease_s", 120).WithGroup("g")
	log.Info("m", "size_bytes", 1<<30, "url", "http://me:secret@h/x")
	want := `msg=m lease_s=2m0s g.size_bytes="1.0 GiB" g.url=http://[REDACTED]@h/x` + "\n"
	if !strings.HasSuffix(text.String(), want) {
		t.Fatalf("got %q, want it to end in %q", text.String(), want)
	}
}

// TestLogFormats: --log-format json and text both redact; auto on a
// buffer (not a terminal) is JSON.
func TestLogFormats(t *testing.T) {
	for _, format := range []string{"json", "text", "auto"} {
		var b bytes.Buffer
		slog.New(formatLogHandler(&b, format, nil)).Info("m", "url", "http://me:secret@h/x", "took_s", (1500 * time.Millisecond).Seconds())
		isJSON := strings.HasPrefix(b.String(), "{")
		if strings.Contains(b.String(), "secret") || isJSON != (format != "text") {
			t.Errorf("--log-format=%s: %q", format, b.String())
		}
		if isJSON && !strings.Contains(b.String(), `"took_s":1.5`) {
			t.Errorf("--log-format=%s: %q, want took_s a number", format, b.String())
		}
	}
}
