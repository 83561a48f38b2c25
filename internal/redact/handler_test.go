package redact

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
)

// stringer is a fmt.Stringer that is no error.
type stringer string

func (s stringer) String() string { return string(s) }

func TestHandler(t *testing.T) {
	secret := "pw-0123456789"
	u, _ := url.Parse("s3://b/p?endpoint=http://u:" + secret + "@h")
	cases := []struct {
		name string
		log  func(*slog.Logger)
		want string // a part of the output
	}{
		{"message", func(l *slog.Logger) { l.Info("open http://u:" + secret + "@h") }, "open http://[REDACTED]@h"},
		{"string", func(l *slog.Logger) { l.Info("m", "url", "s3://b?X-Amz-Signature="+secret) }, "X-Amz-Signature=[REDACTED]"},
		{"error", func(l *slog.Logger) {
			l.Error("run failed", "err", fmt.Errorf("store: %w", errors.New("https://u:"+secret+"@h")))
		}, "store: https://[REDACTED]@h"},
		{"stringer", func(l *slog.Logger) { l.Info("m", "url", u) }, "endpoint=http://[REDACTED]@h"},
		{"non-error stringer", func(l *slog.Logger) { l.Info("m", "s", stringer("?token="+secret)) }, "?token=[REDACTED]"},
		{"list", func(l *slog.Logger) { l.Info("m", "urls", []string{"https://u:" + secret + "@h"}) }, "https://[REDACTED]@h"},
		{"group", func(l *slog.Logger) { l.Info("m", slog.Group("g", "u", "https://u:"+secret+"@h")) }, "https://[REDACTED]@h"},
		{"with attrs", func(l *slog.Logger) { l.With("store", "https://u:"+secret+"@h").Info("m") }, "https://[REDACTED]@h"},
		{"with group", func(l *slog.Logger) { l.WithGroup("g").Info("m", "x", "?sig="+secret) }, "sig=[REDACTED]"},
		{"environ value", func(l *slog.Logger) { l.Info("m", "x", "the key is sekret-value") }, "the key is [REDACTED]"},
		{"other kinds kept", func(l *slog.Logger) { l.Info("m", "n", 42, "ok", true) }, `"n":42,"ok":true`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			h := Handler(slog.NewJSONHandler(&b, nil), []string{"MY_API_KEY=sekret-value"})
			c.log(slog.New(Handler(h, nil))) // wrapped twice: one pass, the inner environ kept
			out := b.String()
			if strings.Contains(out, secret) {
				t.Fatalf("the secret was logged: %s", out)
			}
			if !strings.Contains(out, c.want) {
				t.Fatalf("output %s lacks %q", out, c.want)
			}
		})
	}
}

func TestHandlerEnviron(t *testing.T) {
	var b bytes.Buffer
	l := slog.New(Handler(slog.NewTextHandler(&b, nil), []string{"MY_API_KEY=sekret-value"}))
	l.Info("m", "x", "the key is sekret-value")
	if out := b.String(); strings.Contains(out, "sekret-value") || !strings.Contains(out, "the key is [REDACTED]") {
		t.Fatalf("output %s", out)
	}
}
