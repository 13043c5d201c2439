package transport

import (
	"strings"
	"testing"
	"time"
)

func TestTCPRoundTrip(t *testing.T) {
	addr, got := serveOne(t, DefaultTCPOptions(), nil)
	d, err := NewDialer(DefaultTCPOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.DialContext(testCtx(t), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if a := recvAccepted(t, got); a.handshakeErr != nil {
		t.Fatalf("Handshake on plain TCP = %v, want nil", a.handshakeErr)
	}
	echo(t, c)
}

func TestTCPRoundTripIPv6(t *testing.T) {
	ln, err := Listen(testCtx(t), "[::1]:0", DefaultTCPOptions(), nil)
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	defer ln.Close()
	d, _ := NewDialer(DefaultTCPOptions(), nil)
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	c, err := d.DialContext(testCtx(t), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatalf("Accept: %v", err)
	}
}

func TestDialRefusedSaysWhat(t *testing.T) {
	ln := listenT(t, DefaultTCPOptions(), nil)
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	d, _ := NewDialer(DefaultTCPOptions(), nil)
	_, err := d.DialContext(testCtx(t), addr)
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "edge is listening") {
		t.Fatalf("dial to closed port: err = %v, want one naming %s and what to check", err, addr)
	}
}

func TestTCPOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*TCPOptions)
		wantErr string
	}{
		{"defaults", func(*TCPOptions) {}, ""},
		{"zero keepalive fields take defaults", func(o *TCPOptions) { *o = TCPOptions{KeepAlive: true} }, ""},
		{"keepalive off ignores timings", func(o *TCPOptions) { o.KeepAlive = false; o.KeepAliveCount = 1000 }, ""},
		{"idle below a second", func(o *TCPOptions) { o.KeepAliveIdle = 500 * time.Millisecond }, "KeepAliveIdle"},
		{"interval too long", func(o *TCPOptions) { o.KeepAliveInterval = 10 * time.Hour }, "KeepAliveInterval"},
		{"count too high", func(o *TCPOptions) { o.KeepAliveCount = 128 }, "KeepAliveCount"},
		{"negative count", func(o *TCPOptions) { o.KeepAliveCount = -1 }, "KeepAliveCount"},
		{"negative buffer", func(o *TCPOptions) { o.SendBuffer = -1 }, "negative"},
		{"negative lowat", func(o *TCPOptions) { o.NotSentLowat = -1 }, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := DefaultTCPOptions()
			tt.mod(&o)
			err := o.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want an error naming %s", err, tt.wantErr)
			}
			if _, derr := NewDialer(o, nil); derr == nil {
				t.Fatal("NewDialer accepted invalid options")
			}
			if ln, lerr := Listen(testCtx(t), "127.0.0.1:0", o, nil); lerr == nil {
				ln.Close()
				t.Fatal("Listen accepted invalid options")
			}
		})
	}
}
