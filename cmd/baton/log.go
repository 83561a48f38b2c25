package main

import (
	"io"
	"log/slog"
	"os"
)

// newLogHandler logs text on a terminal and JSON lines otherwise; opts may
// be nil.
func newLogHandler(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	if isTerminal(w) {
		return slog.NewTextHandler(w, opts)
	}
	return slog.NewJSONHandler(w, opts)
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
