// Package syncbuf provides Buffer, a bytes.Buffer that one goroutine can
// write (a logger, a subprocess's output copier) while another reads it: the
// one such buffer the tests share.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer is an append-only byte buffer safe for concurrent use. The zero
// value is ready to use.
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
