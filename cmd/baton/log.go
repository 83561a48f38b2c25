package main

import (
	"context"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"time"

	"github.com/batonrun/baton/internal/redact"
	"github.com/batonrun/baton/internal/units"
)

// newLogHandler logs text on a terminal and JSON lines otherwise, with the
// credentials of URLs removed (redact.Handler); opts may be nil.
func newLogHandler(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	return formatLogHandler(w, "auto", opts)
}

// formatLogHandler is baton's one log handler: JSON lines ("json"), text
// for people ("text": sizes and durations with their units, see
// humanHandler), or text on a terminal and JSON otherwise ("auto"); always
// with the credentials of URLs removed (redact.Handler). opts may be nil.
func formatLogHandler(w io.Writer, format string, opts *slog.HandlerOptions) slog.Handler {
	if format == "text" || format != "json" && isTerminal(w) {
		return redact.Handler(humanHandler{slog.NewTextHandler(w, opts)}, nil)
	}
	return redact.Handler(slog.NewJSONHandler(w, opts), nil)
}

// humanHandler writes for people what baton logs for machines: an
// attribute is a plain number with its unit in its key, and here a number
// keyed bytes or *_bytes becomes a size (1.5 GiB), *_bytes_per_s a rate
// (50.0 MiB/s), and *_s or *_ms a duration (2.5s, 1m30s, 64ms). Other
// attributes, and those that are not numbers, pass on unchanged. It is for
// text only: JSON keeps the numbers.
type humanHandler struct{ next slog.Handler }

func (h humanHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h humanHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, rec.Message, rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(humanAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h humanHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return humanHandler{h.next.WithAttrs(humanAttrs(attrs))}
}

func (h humanHandler) WithGroup(name string) slog.Handler {
	return humanHandler{h.next.WithGroup(name)}
}

func humanAttrs(as []slog.Attr) []slog.Attr {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = humanAttr(a)
	}
	return out
}

// humanAttr is one attribute as humanHandler writes it.
func humanAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(humanAttrs(v.Group())...)}
	}
	x, ok := number(v)
	if !ok {
		return a
	}
	k := a.Key
	switch {
	case strings.HasSuffix(k, "_bytes_per_s"):
		return slog.String(k, units.Bytes(int64(x))+"/s")
	case k == "bytes" || strings.HasSuffix(k, "_bytes"):
		if v.Kind() == slog.KindInt64 {
			return slog.String(k, units.Bytes(v.Int64()))
		}
		return slog.String(k, units.Bytes(int64(x)))
	case strings.HasSuffix(k, "_ms"):
		return slog.String(k, humanDuration(x*float64(time.Millisecond)))
	case strings.HasSuffix(k, "_s"):
		return slog.String(k, humanDuration(x*float64(time.Second)))
	}
	return a
}

// number is v as a float64 if it is a finite number that an int64 holds.
func number(v slog.Value) (float64, bool) {
	var x float64
	switch v.Kind() {
	case slog.KindInt64:
		x = float64(v.Int64())
	case slog.KindUint64:
		x = float64(v.Uint64())
	case slog.KindFloat64:
		x = v.Float64()
	default:
		return 0, false
	}
	return x, !math.IsNaN(x) && math.Abs(x) < math.MaxInt64
}

// humanDuration writes ns nanoseconds as Go does (2.5s, 1m30s), rounded
// to the second from a minute on, to the millisecond from a millisecond on.
func humanDuration(ns float64) string {
	d := time.Duration(math.Round(ns))
	switch abs := max(d, -d); {
	case abs >= time.Minute:
		d = d.Round(time.Second)
	case abs >= time.Millisecond:
		d = d.Round(time.Millisecond)
	default:
		d = d.Round(time.Microsecond)
	}
	return d.String()
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
