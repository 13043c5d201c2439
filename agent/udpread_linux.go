package agent

import (
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sluicehq/sluice/control"
)

// datagramPool holds the buffers a flow reads its local service's replies
// into: room for the length prefix and the largest datagram.
var datagramPool = sync.Pool{New: func() any {
	b := make([]byte, control.DatagramOverhead+control.MaxDatagram)
	return &b
}}

// replyReader reads a connected UDP socket through its RawConn, taking a
// pooled buffer only once a datagram is there: a flow waiting for its
// service holds no 64 KiB buffer, so idle flows cost little more than their
// goroutines.
type replyReader struct {
	c     net.Conn // used only when the socket's RawConn is out of reach
	rc    syscall.RawConn
	bp    *[]byte
	n     int
	errno error
	fn    func(fd uintptr) bool
}

func newReplyReader(c net.Conn) *replyReader {
	r := &replyReader{c: c}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return r
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return r
	}
	r.rc = rc
	r.fn = r.try
	return r
}

func (r *replyReader) try(fd uintptr) bool {
	if r.bp == nil {
		r.bp = datagramPool.Get().(*[]byte)
	}
	for {
		r.n, r.errno = unix.Read(int(fd), (*r.bp)[control.DatagramOverhead:])
		if r.errno != unix.EINTR {
			break
		}
	}
	if r.errno == unix.EAGAIN {
		datagramPool.Put(r.bp)
		r.bp = nil
		return false
	}
	return true
}

// next returns the next datagram with room for its length prefix before it
// (buf[:DatagramOverhead]), in a pooled buffer the caller hands back with
// release.
func (r *replyReader) next() (buf []byte, n int, err error) {
	if r.rc == nil {
		r.bp = datagramPool.Get().(*[]byte)
		n, err := r.c.Read((*r.bp)[control.DatagramOverhead:])
		if err != nil {
			r.release()
			return nil, 0, err
		}
		return *r.bp, n, nil
	}
	if err := r.rc.Read(r.fn); err != nil {
		return nil, 0, err
	}
	if r.errno != nil {
		err := &net.OpError{Op: "read", Net: "udp", Err: os.NewSyscallError("read", r.errno)}
		r.release()
		return nil, 0, err
	}
	return *r.bp, r.n, nil
}

func (r *replyReader) release() {
	if r.bp != nil {
		datagramPool.Put(r.bp)
		r.bp = nil
	}
}
