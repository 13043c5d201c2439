package agent

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sluicehq/sluice/control"
)

func TestListenTCPDeliversPublicConnections(t *testing.T) {
	e := startEdge(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := Listen(ctx, Config{Server: e.srv.Addr().String(), Token: testToken, Tunnels: []Tunnel{{Kind: control.KindTCP}}})
	if err != nil {
		t.Fatal(err)
	}
	addr := tcpAddrOf(t, ln.URL())
	if ln.Addr().Network() != "sluice" || ln.Addr().String() != ln.URL() {
		t.Fatalf("Addr() = %s %s, want sluice %s", ln.Addr().Network(), ln.Addr(), ln.URL())
	}
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		if _, _, err := net.SplitHostPort(c.RemoteAddr().String()); err != nil || c.RemoteAddr().(*net.TCPAddr).IP.String() != "127.0.0.1" {
			served <- errors.New("RemoteAddr is not the public client's address: " + c.RemoteAddr().String())
			return
		}
		_, err = io.Copy(c, c)
		served <- err
	}()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "ping")
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "ping" {
		t.Fatalf("echo through Listen: %q, %v", got, err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
}

func TestListenReportsRefusal(t *testing.T) {
	e := startEdge(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Listen(ctx, Config{Server: e.srv.Addr().String(), Token: "wrong", Tunnels: []Tunnel{{Kind: control.KindHTTP}}})
	var ce *control.Error
	if !errors.As(err, &ce) || ce.Code != control.CodeUnauthorized {
		t.Fatalf("Listen with a wrong token: %v, want %s", err, control.CodeUnauthorized)
	}
}
