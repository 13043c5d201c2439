//go:build !linux

package agent

import (
	"net"

	"github.com/sluicehq/sluice/control"
)

// replyReader keeps one buffer per flow where the poller's readiness is not
// reachable.
type replyReader struct {
	c   net.Conn
	buf []byte
}

func newReplyReader(c net.Conn) *replyReader {
	return &replyReader{c: c, buf: make([]byte, control.DatagramOverhead+control.MaxDatagram)}
}

func (r *replyReader) next() ([]byte, int, error) {
	n, err := r.c.Read(r.buf[control.DatagramOverhead:])
	return r.buf, n, err
}

func (r *replyReader) release() {}
