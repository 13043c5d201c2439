package server

import (
	"context"
	"crypto/x509"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sluicehq/sluice/frame"
	"github.com/sluicehq/sluice/transport"
)

// Over TLS the preface is read and replayed: the session still reads it
// first, and still sees the TLS connection's ways to write without waiting
// for the socket and to write a batch's pieces without flattening them.
func TestAwaitPrefaceOverTLSKeepsTLSConn(t *testing.T) {
	ca, err := transport.NewCA("preface test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	scfg, err := transport.ServerTLS{Certificate: &cert}.Config()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := transport.Listen(ctx, "127.0.0.1:0", transport.DefaultTCPOptions(), scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	ccfg, err := transport.ClientTLS{ServerName: "localhost"}.Config()
	if err != nil {
		t.Fatal(err)
	}
	ccfg.RootCAs = roots
	d, err := transport.NewDialer(transport.DefaultTCPOptions(), ccfg)
	if err != nil {
		t.Fatal(err)
	}
	dialed := make(chan error, 1)
	after := []byte("first frame")
	go func() {
		c, err := d.DialContext(ctx, ln.Addr().String())
		if err == nil {
			defer c.Close()
			_, err = c.Write(append(frame.AppendPreface(nil), after...))
			io.Copy(io.Discard, c) // until the server closes
		}
		dialed <- err
	}()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := transport.Handshake(ctx, conn); err != nil {
		t.Fatal(err)
	}
	pc, err := awaitPreface(conn, time.Now().Add(10*time.Second))
	if err != nil {
		t.Fatalf("awaitPreface: %v", err)
	}
	type tlsWays interface {
		TryWrite([]byte) (bool, error)
		Flush() error
		WriteBuffers([][]byte) (int64, error)
	}
	if _, ok := pc.(tlsWays); !ok {
		t.Fatalf("awaitPreface hid the TLS connection's TryWrite, Flush and WriteBuffers behind a %T", pc)
	}
	got := make([]byte, frame.PrefaceSize+len(after))
	if _, err := io.ReadFull(pc, got); err != nil {
		t.Fatal(err)
	}
	if want := append(frame.AppendPreface(nil), after...); string(got) != string(want) {
		t.Fatalf("read %q after awaitPreface, want the preface replayed and then %q", got, after)
	}
	conn.Close()
	if err := <-dialed; err != nil {
		t.Fatalf("client: %v", err)
	}
}

var _ net.Conn = (*replayTLSConn)(nil)
