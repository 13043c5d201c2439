// Package trywrite writes to a socket without waiting for it: what the
// socket's buffer takes now goes out, and the caller keeps the rest for a
// blocking write later. mux uses it for window updates and for payloads it
// hands straight to a destination socket, transport for TLS records sealed
// on a goroutine that must not block.
//
// Where the platform has no non-blocking write on a socket's descriptor
// (Windows, whose sockets complete writes through the runtime's I/O
// completion port), New returns nil and callers write the usual, blocking
// way.
package trywrite

import "syscall"

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
