//go:build !unix

package server

import (
	"net"
	"time"
)

// peekPreface peeks nothing: without a non-blocking MSG_PEEK through the
// runtime's poller (Windows), the preface is read and replayed as on TLS.
func peekPreface(net.Conn, []byte, time.Time) (peeked bool, err error) { return false, nil }
