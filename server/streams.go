package server

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
)

// Stream accounting: every public connection or request carried to an agent
// holds one stream, counted against its owner's limit until released.

// errStreamLimit refuses a public connection when its tunnel's owner has as
// many streams open as it may.
var errStreamLimit = errors.New("the tunnel's owner has as many connections open as its limit allows")

// acquireStream counts one more stream for ac's owner; release uncounts it
// and may be called more than once.
func (s *Server) acquireStream(ac *agentConn) (release func(), err error) {
	max := int64(ac.currentRule().maxStreams)
	if max == 0 {
		max = int64(s.limits().StreamsPerOwner)
	}
	v, _ := s.ownerStreams.LoadOrStore(ac.owner, new(atomic.Int64))
	n := v.(*atomic.Int64)
	if n.Add(1) > max {
		n.Add(-1)
		s.warn.warn(ac.currentRule().ownerName, "public connection refused: the owner's stream limit is reached", "limit", max)
		return nil, errStreamLimit
	}
	var once sync.Once
	return func() { once.Do(func() { n.Add(-1) }) }, nil
}

// releasingConn releases a stream's count when the HTTP transport closes it.
type releasingConn struct {
	net.Conn
	release func()
}

func (c *releasingConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
