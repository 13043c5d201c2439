//go:build !linux

package mux

import "io"

// vectorConn is readv(2) on a TCP connection, which only the Linux build
// uses; elsewhere the frame reader reads payloads and headers apart.
type vectorConn struct{}

func newVectorConn(io.Reader) *vectorConn { return nil }

func (*vectorConn) read(a, b []byte) (int, error) { panic("mux: no vector reads on this platform") }
