//go:build unix

package server

import (
	"errors"
	"io"
	"net"
	"syscall"
	"time"
)

// peekPreface peeks the preface of a plain TCP connection into p, leaving it
// in the socket; peeked is false (and nothing read) for any other conn.
func peekPreface(conn net.Conn, p []byte, deadline time.Time) (peeked bool, err error) {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return false, nil
	}
	return true, peekFull(tc, p, deadline)
}

// peekFull waits until len(p) bytes can be peeked from c.
func peekFull(c *net.TCPConn, p []byte, deadline time.Time) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	for {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = syscall.Recvfrom(int(fd), p, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			return rerr != syscall.EAGAIN
		})
		switch {
		case err != nil:
			return err
		case rerr != nil:
			return rerr
		case n == 0:
			return io.EOF
		case n >= len(p):
			return nil
		}
		if err := checkPreface(p[:n]); err != nil {
			return err
		}
		// A preface split across segments: the socket stays readable, so
		// wait a little rather than spin.
		if time.Now().After(deadline) {
			return errors.New("i/o timeout waiting for the rest of the preface")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
