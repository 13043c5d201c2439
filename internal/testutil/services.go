package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"testing"
)

// EchoServer is a local TCP service that echoes every byte until EOF, then
// half-closes, so a client that half-closes reads the whole echo.
func EchoServer(t testing.TB) string {
	t.Helper()
	return Serve(t, func(c net.Conn) {
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	})
}

// SumService reads a connection to EOF and answers "SHA256HEX COUNT": the
// checksum and the byte count of what it read.
func SumService(t testing.TB) string {
	t.Helper()
	return Serve(t, func(c net.Conn) {
		sum, n, _ := SumOf(c)
		fmt.Fprintf(c, "%s %d", sum, n)
	})
}

// SumOf reads r to EOF and returns the hex SHA-256 of what it read and the
// byte count.
func SumOf(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil)), n, err
}
