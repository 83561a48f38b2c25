package main

import (
	"io"
	"log/slog"
	"os"

	"github.com/batonrun/baton/internal/redact"
)

// newLogHandler logs text on a terminal and JSON lines otherwise, with the
// credentials of URLs removed (redact.Handler); opts may be nil.
func newLogHandler(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	if isTerminal(w) {
		return redact.Handler(slog.NewTextHandler(w, opts), nil)
	}
	return redact.Handler(slog.NewJSONHandler(w, opts), nil)
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
