//go:build !unix

package trywrite

import "syscall"

// New returns nil: this platform has no non-blocking write on a socket's
// descriptor, so callers write the blocking way.
func New(c syscall.Conn) *Writer { return nil }
