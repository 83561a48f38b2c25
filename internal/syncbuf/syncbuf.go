// Package syncbuf is a buffer that one goroutine may read while others
// write into it: the output of a process or a logger, which a test reads
// while it runs.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer collects what is written to it. Its zero value is an empty buffer
// ready to use; it must not be copied once used.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
