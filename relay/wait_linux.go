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
		s.bp = getBuf()
	}
	for {
		s.n, s.errno = unix.Read(int(fd), *s.bp)
		if s.errno != unix.EINTR {
			break
		}
	}
	if s.errno == unix.EAGAIN {
		putBuf(s.bp)
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
