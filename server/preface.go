package server

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/sluicehq/sluice/frame"
	"github.com/sluicehq/sluice/transport"
)

// errNoPreface means the peer sent something other than the sluice preface.
var errNoPreface = errors.New("not a sluice agent")

// awaitPreface holds a new agent connection until its mux preface has
// arrived, before any mux session exists, so a connection that says nothing
// costs one goroutine and no session buffers. On plain TCP the preface is
// peeked and left in the socket for the session to read, so the session
// still gets the *net.TCPConn it writes to with writev; on TLS it is read and
// replayed.
func awaitPreface(conn net.Conn, deadline time.Time) (net.Conn, error) {
	conn.SetReadDeadline(deadline)
	defer conn.SetReadDeadline(time.Time{})
	var buf [frame.PrefaceSize]byte
	if peeked, err := peekPreface(conn, buf[:], deadline); peeked {
		if err != nil {
			return nil, err
		}
		return conn, checkPreface(buf[:])
	}
	if _, err := io.ReadFull(conn, buf[:]); err != nil {
		return nil, err
	}
	if err := checkPreface(buf[:]); err != nil {
		return nil, err
	}
	if tc, ok := conn.(*transport.TLSConn); ok {
		// Keep TLSConn's methods in view of the session, which writes
		// window updates with TryWrite rather than waking its writer.
		return &replayTLSConn{TLSConn: tc, head: buf[:]}, nil
	}
	return &replayConn{Conn: conn, head: buf[:]}, nil
}

// checkPreface checks that b, which may be the first part of a preface only,
// starts like one.
func checkPreface(b []byte) error {
	if m := min(len(b), len(frame.Magic)); string(b[:m]) != frame.Magic[:m] {
		return fmt.Errorf("%w: its first bytes are %q", errNoPreface, b)
	}
	return nil
}

// replayConn returns head before reading from Conn.
type replayConn struct {
	net.Conn
	head []byte
}

func (c *replayConn) Read(p []byte) (int, error) { return replay(&c.head, c.Conn, p) }

// replayTLSConn is a replayConn over TLS.
type replayTLSConn struct {
	*transport.TLSConn
	head []byte
}

func (c *replayTLSConn) Read(p []byte) (int, error) { return replay(&c.head, c.TLSConn, p) }

func replay(head *[]byte, r io.Reader, p []byte) (int, error) {
	if len(*head) > 0 {
		n := copy(p, *head)
		*head = (*head)[n:]
		return n, nil
	}
	return r.Read(p)
}

// namePeer answers a peer that did not start with the preface with the
// edge's own, so an agent with TLS where the edge has none (or a probe) can
// tell it reached a sluice edge. The edge then half-closes and waits briefly
// for the peer to hang up: closing with the peer's bytes unread would reset
// the connection and could discard the preface before it is read.
func namePeer(conn net.Conn) {
	conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write(frame.AppendPreface(nil)); err != nil {
		return
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	io.Copy(io.Discard, io.LimitReader(conn, 64<<10))
}
