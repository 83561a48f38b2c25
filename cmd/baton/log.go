package main

import (
	"io"
	"log/slog"
	"os"
)

// newLogHandler logs text on a terminal and JSON lines otherwise.
func newLogHandler(w io.Writer) slog.Handler {
	if isTerminal(w) {
		return slog.NewTextHandler(w, nil)
	}
	return slog.NewJSONHandler(w, nil)
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
