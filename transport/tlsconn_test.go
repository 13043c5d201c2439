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
	return tlsPairOver(t, true)
}

// tlsPairOver is tlsPair with the client straight on its *net.TCPConn
// unless counting is set (then the returned countingConn is nil).
func tlsPairOver(t testing.TB, counting bool) (*TLSConn, *TLSConn, *countingConn) {
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
	var cc *countingConn
	var client *TLSConn
	if counting {
		cc = &countingConn{Conn: raw}
		client = newTLSConn(cc, ccfg, true)
	} else {
		client = newTLSConn(raw, ccfg, true)
	}
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

// A TryWrite into a socket with room sends everything at once: nothing is
// held, no batch buffer stays, and the peer reads the bytes without a Flush.
func TestTLSConnTryWriteWithRoom(t *testing.T) {
	client, server, _ := tlsPairOver(t, false)
	msg := []byte("a window update's worth of bytes")
	held, err := client.TryWrite(msg)
	if err != nil || held {
		t.Fatalf("TryWrite into an empty socket = held %v, %v; want everything written", held, err)
	}
	if client.out.buf != nil {
		t.Fatal("the batch buffer is still held after a TryWrite that wrote everything")
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(server, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("the peer read %q, %v; want %q", got, err, msg)
	}
}

// A TryWrite into a full socket does not wait: it holds the records the
// socket did not take, and they arrive, in order and before what is written
// after them, once a Write or a Flush runs.
func TestTLSConnTryWriteHolds(t *testing.T) {
	for _, then := range []string{"Flush", "small Write", "large Write"} {
		t.Run(then, func(t *testing.T) {
			client, server, _ := tlsPairOver(t, false)
			var sent []byte
			chunk := make([]byte, 64<<10)
			held := false
			// The peer does not read, so the socket buffers fill: a few MiB
			// on loopback.
			for i := 0; !held; i++ {
				if i == 4096 {
					t.Fatal("256 MiB of TryWrite and the socket never filled")
				}
				rand.Read(chunk)
				var err error
				done := make(chan struct{})
				go func() {
					defer close(done)
					held, err = client.TryWrite(chunk)
				}()
				select {
				case <-done:
				case <-time.After(testTimeout):
					t.Fatal("TryWrite waited for a full socket")
				}
				if err != nil {
					t.Fatalf("TryWrite: %v", err)
				}
				sent = append(sent, chunk...)
			}
			last := make([]byte, 100)
			if then == "large Write" {
				last = make([]byte, 100<<10)
			}
			rand.Read(last)
			errc := make(chan error, 1)
			go func() {
				switch then {
				case "Flush":
					errc <- client.Flush()
				default:
					_, err := client.Write(last)
					errc <- err
				}
			}()
			if then != "Flush" {
				sent = append(sent, last...)
			}
			got := make([]byte, len(sent))
			if _, err := io.ReadFull(server, got); err != nil {
				t.Fatalf("reading what was sent: %v", err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("%s after the held TryWrite: %v", then, err)
			}
			if !bytes.Equal(got, sent) {
				t.Fatalf("the peer read different bytes, or in another order, than the %d sent", len(sent))
			}
			if client.out.buf != nil {
				t.Fatalf("the batch buffer is still held after the %s; an idle connection must hold none", then)
			}
		})
	}
}

// A write deadline that passed since the last write is no failure for a
// TryWrite, which never waits: it holds the records, and the Flush that
// follows under a fresh deadline sends them.
func TestTLSConnTryWriteAfterDeadline(t *testing.T) {
	client, server, _ := tlsPairOver(t, false)
	client.SetWriteDeadline(time.Now().Add(-time.Second))
	msg := []byte("credit")
	held, err := client.TryWrite(msg)
	if err != nil || !held {
		t.Fatalf("TryWrite past the write deadline = held %v, %v; want held, no error", held, err)
	}
	client.SetWriteDeadline(time.Now().Add(testTimeout))
	if err := client.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(server, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("the peer read %q, %v; want %q", got, err, msg)
	}
}

// WriteBuffers sends the pieces of a mux batch as a Write of their
// concatenation would: every byte in order, small pieces gathered and large
// ones sealed where they lie, a header and a 64 KiB payload in one socket
// write, and no gather or batch buffer kept afterwards.
func TestTLSConnWriteBuffers(t *testing.T) {
	piece := func(n int) []byte { b := make([]byte, n); rand.Read(b); return b }
	for _, tc := range []struct {
		name      string
		bufs      [][]byte
		maxWrites int
	}{
		{"header and payload", [][]byte{piece(9), piece(64 << 10)}, 1},
		{"small pieces", [][]byte{piece(9), piece(100), piece(9), piece(3000), piece(17)}, 1},
		{"small pieces over a record", [][]byte{piece(9), piece(8000), piece(9), piece(8000), piece(9), piece(8000)}, 1},
		{"mixed", [][]byte{piece(30), piece(9), piece(20 << 10), piece(9), piece(10), piece(9), piece(64 << 10), piece(5)}, 2},
		{"empty pieces", [][]byte{nil, piece(9), {}, piece(10 << 10)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server, cc := tlsPair(t)
			var want []byte
			for _, b := range tc.bufs {
				want = append(want, b...)
			}
			got := make(chan []byte, 1)
			go func() {
				b := make([]byte, len(want))
				io.ReadFull(server, b)
				got <- b
			}()
			before := cc.count()
			if n, err := client.WriteBuffers(tc.bufs); n != int64(len(want)) || err != nil {
				t.Fatalf("WriteBuffers = %d, %v; want %d, nil", n, err, len(want))
			}
			if w := cc.count() - before; w > tc.maxWrites {
				t.Errorf("WriteBuffers took %d socket writes, want at most %d", w, tc.maxWrites)
			}
			if b := <-got; !bytes.Equal(b, want) {
				t.Fatal("the peer read different bytes, or in another order")
			}
			if client.out.buf != nil {
				t.Fatal("the batch buffer is still held after WriteBuffers")
			}
		})
	}
}
