package mux

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"
)

func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return a, <-ch
}

// sessionPair is a client and a server session over loopback TCP with
// one configuration for both.
func sessionPair(t testing.TB, cfg Config) (*Session, *Session) {
	t.Helper()
	return tstPair(t, cfg, cfg)
}

func TestSmokeEcho(t *testing.T) {
	c, s := sessionPair(t, DefaultConfig())
	go func() {
		for {
			st, err := s.AcceptStream(context.Background())
			if err != nil {
				return
			}
			go func() {
				io.Copy(st, st)
				st.CloseWrite()
			}()
		}
	}()
	data := make([]byte, 8<<20)
	rand.Read(data)
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		st.Write(data)
		st.CloseWrite()
	}()
	st.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(st)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echo mismatch: got %d bytes", len(got))
	}
	st.Close()
	t.Logf("stats client %+v", c.Stats())
}
