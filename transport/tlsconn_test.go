package transport

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// countingConn counts the writes that reach a connection.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *countingConn) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

// tlsPair returns the two ends of a TLS 1.3 connection over loopback TCP,
// the client's socket counting its writes.
func tlsPair(t testing.TB) (*TLSConn, *TLSConn, *countingConn) {
	t.Helper()
	p := newPKI(t)
	ccfg, err := ClientTLS{CAFile: p.caFile, ServerName: "edge.test"}.Config()
	if err != nil {
		t.Fatal(err)
	}
	scfg := serverConfig(t, ServerTLS{CertFile: p.serverCrt, KeyFile: p.serverKey})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		got <- c
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sraw := <-got
	if sraw == nil {
		t.Fatal("accept failed")
	}
	cc := &countingConn{Conn: raw}
	client := newTLSConn(cc, ccfg, true)
	server := newTLSConn(sraw, scfg, false)
	t.Cleanup(func() { client.Close(); server.Close() })
	for _, c := range []*TLSConn{client, server} {
		c.SetDeadline(time.Now().Add(testTimeout))
	}
	errc := make(chan error, 1)
	go func() { errc <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	return client, server, cc
}

// crypto/tls writes a record per system call; a TLSConn sends the records
// of one Write together, a 64 KiB write (four records) in one write and a
// 1 MiB write in about one write per four records, and every byte arrives.
func TestTLSConnBatchesRecords(t *testing.T) {
	for _, tc := range []struct {
		size, maxWrites int
	}{
		{100, 1},
		{64 << 10, 1},
		{1 << 20, 16},
	} {
		client, server, cc := tlsPair(t)
		data := make([]byte, tc.size)
		rand.Read(data)
		got := make(chan []byte, 1)
		go func() {
			b := make([]byte, tc.size)
			io.ReadFull(server, b)
			got <- b
		}()
		before := cc.count()
		if n, err := client.Write(data); n != len(data) || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", len(data), n, err)
		}
		if w := cc.count() - before; w > tc.maxWrites {
			t.Errorf("a %d-byte Write took %d socket writes, want at most %d", tc.size, w, tc.maxWrites)
		}
		if b := <-got; !bytes.Equal(b, data) {
			t.Fatalf("the peer read different bytes for a %d-byte Write", tc.size)
		}
		if client.out.buf != nil {
			t.Fatal("the batch buffer is still held after the Write; an idle connection must hold none")
		}
	}
}

// A failed batch write fails the Write that made it, and every one after.
func TestTLSConnWriteFailure(t *testing.T) {
	client, _, cc := tlsPair(t)
	cc.Conn.Close()
	if _, err := client.Write(make([]byte, 64<<10)); err == nil {
		t.Fatal("a Write into a closed socket reported no error")
	}
	if _, err := client.Write([]byte("x")); err == nil {
		t.Fatal("a Write after a failed one reported no error")
	}
}
