package fleet

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

type linkPair struct {
	a, b   *Links
	called atomic.Int32
	from   atomic.Value
}

// newLinkPair is two edges' links; b serves "tcp:echo" by echoing and has
// no session for anything else.
func newLinkPair(t testing.TB) *linkPair {
	t.Helper()
	p := &linkPair{}
	handler := func(from string, h Header) (func(net.Conn), error) {
		p.called.Add(1)
		p.from.Store(from)
		if h.Key != "tcp:echo" {
			return nil, NoSessionError{Key: h.Key}
		}
		return func(c net.Conn) {
			defer c.Close()
			io.Copy(c, c)
		}, nil
	}
	var err error
	p.a, err = ListenLinks(context.Background(), LinkConfig{Listen: "127.0.0.1:0", Secret: testSecret, EdgeID: "edge-a", Handler: handler, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	p.b, err = ListenLinks(context.Background(), LinkConfig{Listen: "127.0.0.1:0", Secret: testSecret, EdgeID: "edge-b", Handler: handler, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *linkPair) close() {
	p.a.Close()
	p.b.Close()
}

func TestLinkForwardsAStream(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := newLinkPair(t)
	defer p.close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := p.a.Open(ctx, p.b.Addr().String(), Header{Kind: KindTCP, Key: "tcp:echo", RemoteAddr: "192.0.2.1:5000", LocalAddr: "127.0.0.1:9000"}, []byte("hello "))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("hello world"))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "hello world" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	c.Close()
	if from := p.from.Load(); from != "edge-a" {
		t.Fatalf("the peer saw the stream come from %v, want edge-a (from the certificate)", from)
	}
	// A second stream reuses the link.
	c2, err := p.a.Open(ctx, p.b.Addr().String(), Header{Kind: KindHTTP, Key: "tcp:echo"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c2.Close()
	out, _ := p.a.Forwarded()
	_, in := p.b.Forwarded()
	if out["edge-b"] != 2 || in["edge-a"] != 2 {
		t.Fatalf("forwarded counts: a out %v, b in %v; want 2 each", out, in)
	}
}

func TestLinkNoSessionLeavesTheDataUndelivered(t *testing.T) {
	p := newLinkPair(t)
	defer p.close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := p.a.Open(ctx, p.b.Addr().String(), Header{Kind: KindHTTP, Key: "host:other.example.com"}, []byte("GET / HTTP/1.1\r\n\r\n"))
	if !errors.Is(err, ErrNoSession) {
		t.Fatalf("got %v, want ErrNoSession", err)
	}
}

func TestLinkBadHeaderRefused(t *testing.T) {
	p := newLinkPair(t)
	defer p.close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := p.a.Open(ctx, p.b.Addr().String(), Header{Kind: 9, Key: "tcp:echo"}, nil)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("got %v, want ErrRefused", err)
	}
	if p.called.Load() != 0 {
		t.Fatal("the handler saw a malformed header")
	}
}

// Only holders of the secret get a link: a peer with another secret, a TLS
// client without a certificate, and a plain TCP client are all refused
// before the handler sees anything.
func TestLinkRefusesStrangers(t *testing.T) {
	p := newLinkPair(t)
	defer p.close()
	addr := p.b.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	other, err := ListenLinks(ctx, LinkConfig{Listen: "127.0.0.1:0", Secret: "another-secret-of-the-same-size", EdgeID: "intruder", Handler: func(string, Header) (func(net.Conn), error) { return nil, nil }, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Open(ctx, addr, Header{Kind: KindTCP, Key: "tcp:echo"}, []byte("x")); err == nil {
		t.Fatal("an edge with another secret opened a stream")
	}

	// TLS, trusting the fleet's CA, but with no certificate of its own.
	a, _ := newAuth(testSecret, "nobody")
	cfg := a.tlsConfig()
	cfg.Certificates = nil
	tc, err := tls.Dial("tcp", addr, cfg)
	if err == nil {
		tc.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = tc.Read(make([]byte, 1))
		tc.Close()
	}
	if err == nil {
		t.Fatal("a TLS client without a certificate was answered")
	}

	// Plain TCP speaking the mux preface.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write(bytes.Repeat([]byte("SLUICE"), 10))
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _ := c.Read(make([]byte, 64))
	c.Close()
	if n > 0 && p.called.Load() != 0 {
		t.Fatal("a plain TCP client reached the handler")
	}
	if p.called.Load() != 0 {
		t.Fatalf("the handler was called %d times by strangers", p.called.Load())
	}
}
