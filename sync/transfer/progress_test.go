package transfer

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestReportDrawsTheFinalStateWhenDone(t *testing.T) {
	cases := []struct {
		name     string
		terminal bool
		want     []string
	}{
		{"terminal", true, []string{"\r[", "100%", "3.0 MiB / 3.0 MiB", "\n"}},
		{"log", false, []string{`"msg":"transfer progress"`, `"bytes":3145728`, `"total_bytes":3145728`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p Progress
			p.addTotal(3 << 20)
			p.addDone(3 << 20)
			var buf bytes.Buffer
			ctx, cancel := context.WithCancel(t.Context())
			cancel() // Report draws once more when its context ends, then returns
			p.Report(ctx, &buf, c.terminal, slog.New(slog.NewJSONHandler(&buf, nil)), time.Hour)
			for _, w := range c.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("report %q lacks %q", buf.String(), w)
				}
			}
		})
	}
}
