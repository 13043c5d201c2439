package relay

import (
	"io"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// sockReader reads a socket through its RawConn so that it can hand its
// buffer back to the pool exactly when the socket is empty, between the
// EAGAIN and the poller's wake-up. Deadlines still apply: the runtime poller
// enforces them for RawConn.Read as for Read.
type sockReader struct {
	rc  syscall.RawConn
	net string
	// State of the read in progress, kept here so that the callback given
	// to RawConn.Read is built once and no read allocates.
	fn    func(fd uintptr) bool
	bp    *[]byte
	n     int
	errno error
}

func sockReaderOf(c net.Conn) *sockReader {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	s := &sockReader{rc: rc, net: c.LocalAddr().Network()}
	s.fn = s.tryRead
	return s
}

// tryRead is the RawConn.Read callback: false means "not ready, wait".
func (s *sockReader) tryRead(fd uintptr) bool {
	if s.bp == nil {
		s.bp = bufPool.Get().(*[]byte)
	}
	for {
		s.n, s.errno = unix.Read(int(fd), *s.bp)
		if s.errno != unix.EINTR {
			break
		}
	}
	if s.errno == unix.EAGAIN {
		bufPool.Put(s.bp)
		s.bp = nil
		return false
	}
	return true
}

// read reads into *bp, taking a buffer from the pool when *bp is nil and
// returning it (setting *bp to nil) while it waits for data.
func (s *sockReader) read(bp **[]byte) (int, error) {
	s.bp = *bp
	err := s.rc.Read(s.fn)
	*bp = s.bp
	switch {
	case err != nil:
		return 0, err
	case s.errno != nil:
		return 0, &net.OpError{Op: "read", Net: s.net, Err: os.NewSyscallError("read", s.errno)}
	case s.n == 0:
		return 0, io.EOF
	}
	return s.n, nil
}

// ReadReady appends to b what c has already received, up to cap(b),
// without waiting for more. It returns b as it was when nothing has
// arrived yet, when c is not a socket, or at the end of the stream (which
// the next read meets again); an error only when reading failed. The edge
// sends a public client's first bytes along with the stream's OPEN, in one
// write, instead of in a second write right after it.
func ReadReady(c net.Conn, b []byte) ([]byte, error) {
	sc, ok := c.(syscall.Conn)
	if !ok || len(b) == cap(b) {
		return b, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return b, nil
	}
	var n int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		for {
			n, rerr = unix.Read(int(fd), b[len(b):cap(b)])
			if rerr != unix.EINTR {
				return true // never wait
			}
		}
	})
	switch {
	case err != nil:
		return b, err
	case rerr == unix.EAGAIN:
		return b, nil
	case rerr != nil:
		return b, os.NewSyscallError("read", rerr)
	}
	return b[:len(b)+max(n, 0)], nil
}
