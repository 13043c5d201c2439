//go:build !linux

package relay

import "net"

// sockReader is Linux-only; elsewhere each direction keeps its buffer.
type sockReader struct{}

func sockReaderOf(net.Conn) *sockReader { return nil }

func (*sockReader) read(**[]byte) (int, error) { panic("unreachable: sockReaderOf returns nil") }

// ReadReady reads nothing ahead where sockets are not read through their
// RawConn: the relay reads all of c.
func ReadReady(_ net.Conn, b []byte) ([]byte, error) { return b, nil }
