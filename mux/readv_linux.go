package mux

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// vectorConn reads a TCP connection into two buffers with one readv(2),
// through the runtime's poller, so deadlines and Close work as for Read.
// The session's frame reader uses it to take the end of a bulk payload and
// the next frame's header in one system call.
type vectorConn struct {
	rc  syscall.RawConn
	iov [2]syscall.Iovec
	cnt uintptr // iovecs in use
	// The read in progress, for readFd: a method value made once, since a
	// closure over each call's arguments would be allocated on every read.
	n      int
	errno  syscall.Errno
	readFn func(fd uintptr) bool
}

func newVectorConn(c io.Reader) *vectorConn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	v := &vectorConn{rc: rc}
	v.readFn = v.readFd
	return v
}

// read fills a, then b, with what the socket holds, waiting for at least
// one byte. len(a) > 0.
func (v *vectorConn) read(a, b []byte) (int, error) {
	v.iov[0].Base = &a[0]
	v.iov[0].SetLen(len(a))
	v.cnt = 1
	if len(b) > 0 {
		v.iov[1].Base = &b[0]
		v.iov[1].SetLen(len(b))
		v.cnt = 2
	}
	v.n, v.errno = 0, 0
	err := v.rc.Read(v.readFn)
	v.iov[0].Base, v.iov[1].Base = nil, nil // hold no buffer between reads
	switch {
	case err != nil:
		return 0, err
	case v.errno != 0:
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("readv", v.errno)}
	case v.n == 0:
		return 0, io.EOF
	}
	return v.n, nil
}

// readFd is the RawConn.Read callback: false means "nothing yet, wait".
func (v *vectorConn) readFd(fd uintptr) bool {
	for {
		n, _, errno := syscall.Syscall(syscall.SYS_READV, fd, uintptr(unsafe.Pointer(&v.iov[0])), v.cnt)
		if errno == syscall.EINTR {
			continue
		}
		if errno == syscall.EAGAIN {
			return false
		}
		v.n, v.errno = int(n), errno
		return true
	}
}
