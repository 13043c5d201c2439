// Package trywrite writes to a socket without waiting for it: what the
// socket's buffer takes now goes out, and the caller keeps the rest for a
// blocking write later. mux uses it for window updates and for payloads it
// hands straight to a destination socket, transport for TLS records sealed
// on a goroutine that must not block.
package trywrite

import (
	"errors"
	"syscall"
)

// Writer is one socket's non-blocking writer. Calls must not overlap (the
// user's lock keeps them apart).
type Writer struct {
	rc syscall.RawConn
	// The write in progress, for writeFd: a method value made once, since
	// a closure over each call's arguments would be allocated anew on
	// every write.
	b       []byte
	n       int
	err     error
	writeFn func(fd uintptr) bool
}

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

// Write writes as much of b as the socket takes now. A full socket is not
// an error: n is then short. err is what made the socket refuse the write
// otherwise (a closed socket, a write deadline that passed, a reset), which
// a blocking write would report too.
func (w *Writer) Write(b []byte) (n int, err error) {
	w.b, w.n, w.err = b, 0, nil
	if rerr := w.rc.Write(w.writeFn); rerr != nil {
		w.err = rerr
	}
	n, err = w.n, w.err
	w.b, w.err = nil, nil
	return n, err
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
