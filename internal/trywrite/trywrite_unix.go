//go:build unix

package trywrite

import (
	"errors"
	"syscall"
)

// New returns a Writer for c's socket, or nil if c has none.
func New(c syscall.Conn) *Writer {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	w := &Writer{rc: rc}
	w.writeFn = w.writeFd
	return w
}

func (w *Writer) writeFd(fd uintptr) bool {
	for w.n < len(w.b) {
		m, err := syscall.Write(int(fd), w.b[w.n:])
		if m > 0 {
			w.n += m
		}
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || m <= 0 {
			if err != nil && !errors.Is(err, syscall.EAGAIN) {
				w.err = err
			}
			break
		}
	}
	return true // never wait: a full socket is for a blocking write to wait for
}
