package redact

import (
	"bytes"
	"io"
	"sync"
)

// maxLine is how much of a line without an end a Writer holds back; a
// longer one is redacted and passed on in pieces of this size.
const maxLine = 64 << 10

// Writer passes a stream on to another writer line by line, each line with
// Environ applied, so that a secret is never split between two writes. A
// line ends at '\n' or '\r' (a progress bar redrawn in place). It is safe
// for concurrent use; Flush passes on what is held back.
type Writer struct {
	mu      sync.Mutex
	w       io.Writer
	environ []string
	buf     []byte
}

// NewWriter returns a Writer into w that removes the values of environ's
// secret-named variables and the credentials inside URLs (Environ).
func NewWriter(w io.Writer, environ []string) *Writer {
	return &Writer{w: w, environ: environ}
}

// Write takes p whole; what it passes on is every line completed so far.
// The error is w's.
func (r *Writer) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	n := bytes.LastIndexAny(r.buf, "\n\r") + 1
	if n == 0 && len(r.buf) >= maxLine {
		n = len(r.buf)
	}
	if n == 0 {
		return len(p), nil
	}
	err := r.pass(n)
	return len(p), err
}

// Flush passes on the line held back, if any.
func (r *Writer) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pass(len(r.buf))
}

// pass redacts and writes buf[:n] and keeps the rest.
func (r *Writer) pass(n int) error {
	if n == 0 {
		return nil
	}
	out := Environ(string(r.buf[:n]), r.environ)
	r.buf = append(r.buf[:0], r.buf[n:]...)
	_, err := io.WriteString(r.w, out)
	return err
}
