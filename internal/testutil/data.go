package testutil

import (
	"bytes"
	"io"
	"math/rand/v2"
	"sync"
)

// RandReader is an endless, deterministic stream of pseudo-random bytes:
// the same seed gives the same bytes, so a receiver can check a checksum
// without the sender keeping a copy.
func RandReader(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

// SyncBuffer is a bytes.Buffer that several goroutines may write while a
// test reads it (a logger's output, a child process's stderr).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
