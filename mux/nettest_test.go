package mux

import (
	"context"
	"net"
	"testing"

	"golang.org/x/net/nettest"
)

// TestStreamNetConn holds Stream to the Go team's net.Conn conformance
// suite: basic I/O, ping-pong, deadlines in the past and future, Close
// unblocking calls, and concurrent use of every method.
func TestStreamNetConn(t *testing.T) {
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		a, b := tcpPair(t)
		c, s := tstSessions(t, a, b, DefaultConfig(), DefaultConfig())
		ctx, cancel := context.WithTimeout(context.Background(), tstTimeout)
		defer cancel()
		st, err := c.OpenStream(ctx)
		if err != nil {
			return nil, nil, nil, err
		}
		// The peer learns of a stream from its first frame: the OPEN goes
		// out at once, without waiting for data.
		peer, err := s.AcceptStream(ctx)
		if err != nil {
			return nil, nil, nil, err
		}
		return st, peer, func() { c.Close(); s.Close() }, nil
	})
}
