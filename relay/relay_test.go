package relay

import (
	"github.com/sluicehq/sluice/internal/testutil"

	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRelayHalfClose moves data one way, half-closes, then gets a reply the
// other way: the upload-then-wait pattern of request/response protocols.
func TestRelayHalfClose(t *testing.T) {
	client, a := testutil.TCPPair(t)
	b, service := testutil.TCPPair(t)
	resc := make(chan Result, 1)
	go func() { resc <- Relay(a, b, Options{}) }()

	payload := make([]byte, 3<<20)
	rand.Read(payload)
	go func() {
		client.Write(payload)
		client.CloseWrite()
	}()
	// The service reads to EOF, which only arrives if the half-close crossed.
	service.SetDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(service)
	if err != nil {
		t.Fatalf("service read: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("service got %d bytes, want %d identical bytes", len(got), len(payload))
	}
	reply := sha256.Sum256(got)
	service.Write(reply[:])
	service.CloseWrite()
	client.SetDeadline(time.Now().Add(20 * time.Second))
	back, err := io.ReadAll(client)
	if err != nil || !bytes.Equal(back, reply[:]) {
		t.Fatalf("client got %x, %v; want the checksum", back, err)
	}
	res := <-resc
	if res.Err != nil || res.AToB != int64(len(payload)) || res.BToA != 32 {
		t.Fatalf("result %+v", res)
	}
}

// TestRelayAbortPropagates: when one side fails, the other side sees an
// error, not a clean EOF that would pass for a complete transfer.
func TestRelayAbortPropagates(t *testing.T) {
	client, a := testutil.TCPPair(t)
	b, service := testutil.TCPPair(t)
	resc := make(chan Result, 1)
	go func() { resc <- Relay(a, b, Options{}) }()
	client.Write([]byte("hello"))
	buf := make([]byte, 5)
	service.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(service, buf); err != nil {
		t.Fatal(err)
	}
	// The service dies abruptly.
	service.SetLinger(0)
	service.Close()
	client.SetDeadline(time.Now().Add(10 * time.Second))
	_, err := io.ReadAll(client)
	if err == nil {
		t.Fatal("client saw a clean EOF after the service was reset; want an error")
	}
	if res := <-resc; res.Err == nil {
		t.Fatal("relay reported no error after a reset")
	}
}

func BenchmarkRelay(b *testing.B) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	pair := func() (net.Conn, net.Conn) {
		ch := make(chan net.Conn, 1)
		go func() { c, _ := ln.Accept(); ch <- c }()
		c, _ := net.Dial("tcp", ln.Addr().String())
		return c, <-ch
	}
	client, a := pair()
	bb, service := pair()
	go Relay(a, bb, Options{})
	go io.Copy(io.Discard, service)
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		client.Write(buf)
	}
	b.StopTimer()
	client.Close()
	service.Close()
}

// TestRelayHonoursReadDeadline: reading through the poller directly must
// still respect deadlines set on the connection.
func TestRelayHonoursReadDeadline(t *testing.T) {
	_, a := testutil.TCPPair(t)
	b, _ := testutil.TCPPair(t)
	a.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	b.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	done := make(chan Result, 1)
	go func() { done <- Relay(a, b, Options{}) }()
	select {
	case res := <-done:
		if res.Err == nil {
			t.Fatal("relay of two silent connections past their deadlines reported no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("read deadlines did not end the relay")
	}
}

func TestBufferPool(t *testing.T) {
	var p BufferPool
	b := p.Get()
	if len(b) != ProxyBufferSize {
		t.Fatalf("Get returned %d bytes, want %d", len(b), ProxyBufferSize)
	}
	p.Put(b)
	p.Put(make([]byte, 10)) // a foreign buffer is dropped, not pooled
	for i := 0; i < 100; i++ {
		if b := p.Get(); len(b) != ProxyBufferSize {
			t.Fatalf("Get after a foreign Put returned %d bytes", len(b))
		}
	}
}
