package mux

import (
	"context"
	"io"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// peekNow returns what the socket c has received, without waiting.
func peekNow(t *testing.T, c net.Conn) string {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	var n int
	rc.Read(func(fd uintptr) bool {
		n, _, _ = syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true
	})
	return string(buf[:max(n, 0)])
}

// Data that arrived before Forward is in the socket when Forward returns,
// written by its caller, and the peer's CloseWrite is reported by the
// session's reader itself: a connection whose socket keeps up starts no
// goroutine of its own from start to end.
func TestForwardStartAndEndNeedNoGoroutine(t *testing.T) {
	c, s := sessionPair(t, DefaultConfig())
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("hello"))
	peer, err := s.AcceptStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tstEventually(t, "the first payload to arrive", func() bool {
		peer.mu.Lock()
		defer peer.mu.Unlock()
		return peer.rBuffered == 5
	})
	dst, far := tcpPair(t)
	t.Cleanup(func() { dst.Close(); far.Close() })
	done := make(chan string, 1)
	if err := peer.Forward(dst.(*net.TCPConn), nil, func(n int64, err error) {
		buf := make([]byte, 64<<10)
		done <- string(buf[:runtime.Stack(buf, false)])
		dst.(*net.TCPConn).CloseWrite()
	}); err != nil {
		t.Fatal(err)
	}
	if got := peekNow(t, far); got != "hello" {
		t.Fatalf("when Forward returned the socket held %q; want the %q that arrived before it", got, "hello")
	}
	st.CloseWrite()
	stack := tstRecv(t, done, "Forward's end")
	if !strings.Contains(stack, "recvLoop") {
		t.Fatalf("the end was reported on another goroutine than the session's reader:\n%s", stack)
	}
	far.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(far); err != nil || string(b) != "hello" {
		t.Fatalf("the socket delivered %q, %v; want hello and EOF", b, err)
	}
	st.Close()
	peer.Close()
}
