package redact

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
)

// Handler returns a slog.Handler that passes every record on to h with
// Environ(s, environ) applied to its message and to every string the
// record carries: string attributes, errors, Stringers and string lists,
// also inside groups and in the attributes of WithAttrs. A logger made on
// it is one redaction point for everything logged through it; environ may
// be nil (then only URLs' rules apply). Wrapping a Handler again adds
// environ to the one it has.
func Handler(h slog.Handler, environ []string) slog.Handler {
	if r, ok := h.(*handler); ok { // one pass over both environments, not two
		return &handler{next: r.next, environ: append(slices.Clip(r.environ), environ...)}
	}
	return &handler{next: h, environ: environ}
}

type handler struct {
	next    slog.Handler
	environ []string
}

func (r *handler) Enabled(ctx context.Context, level slog.Level) bool {
	return r.next.Enabled(ctx, level)
}

func (r *handler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, r.text(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(r.attr(a))
		return true
	})
	return r.next.Handle(ctx, out)
}

func (r *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &handler{next: r.next.WithAttrs(r.attrs(attrs)), environ: r.environ}
}

func (r *handler) WithGroup(name string) slog.Handler {
	return &handler{next: r.next.WithGroup(name), environ: r.environ}
}

func (r *handler) text(s string) string { return Environ(s, r.environ) }

func (r *handler) attrs(as []slog.Attr) []slog.Attr {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = r.attr(a)
	}
	return out
}

// attr redacts the strings of one attribute; a value it does not change
// keeps its kind (an error stays an error).
func (r *handler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, r.text(v.String()))
	case slog.KindGroup:
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(r.attrs(v.Group())...)}
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return r.changed(a.Key, v, x.Error())
		case fmt.Stringer:
			return r.changed(a.Key, v, x.String())
		case []string:
			out := make([]string, len(x))
			for i, s := range x {
				out[i] = r.text(s)
			}
			return slog.Any(a.Key, out)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// changed is v, or s redacted as a string where redaction changes it.
func (r *handler) changed(key string, v slog.Value, s string) slog.Attr {
	if red := r.text(s); red != s {
		return slog.String(key, red)
	}
	return slog.Attr{Key: key, Value: v}
}
