package transport

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds every network step so a broken test fails instead of
// hanging.
const testTimeout = 10 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// accepted is what the test server saw of one connection.
type accepted struct {
	conn         net.Conn
	handshakeErr error
}

// serveOne listens on loopback, accepts one connection, runs Handshake and,
// if it succeeds, echoes until the peer closes. The result arrives on the
// channel once the handshake is done; cleanup waits for the server to stop.
func serveOne(t *testing.T, opts TCPOptions, cfg *tls.Config) (addr string, got <-chan accepted) {
	t.Helper()
	ln := listenT(t, opts, cfg)
	ch := make(chan accepted, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			ch <- accepted{handshakeErr: err}
			return
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		herr := Handshake(ctx, c)
		ch <- accepted{conn: c, handshakeErr: herr}
		if herr == nil {
			c.SetDeadline(time.Now().Add(testTimeout))
			io.Copy(c, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), ch
}

func recvAccepted(t *testing.T, ch <-chan accepted) accepted {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(testTimeout):
		t.Fatal("server never accepted the connection")
		return accepted{}
	}
}

// echo writes a message and checks it comes back.
func echo(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(testTimeout))
	msg := []byte("hello through the tunnel")
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if string(buf) != string(msg) {
		t.Fatalf("echo = %q, want %q", buf, msg)
	}
}

func listenT(t *testing.T, opts TCPOptions, cfg *tls.Config) net.Listener {
	t.Helper()
	ln, err := Listen(testCtx(t), "127.0.0.1:0", opts, cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	return ln
}
