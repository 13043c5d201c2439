package server

import (
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

func TestSilentConnectionsCostNoSession(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Limits.PendingPerSource, c.Limits.PendingPerPrefix = 200, 200 })
	before := runtime.NumGoroutine()
	const n = 100
	var conns []net.Conn
	for range n {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	// Wait until the edge has accepted them all (each is pending).
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.gate.mu.Lock()
		pending := s.gate.total
		s.gate.mu.Unlock()
		if pending == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections pending after 5 s", pending, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A mux session costs four goroutines; a connection waiting for its
	// preface costs one.
	if grew := runtime.NumGoroutine() - before; grew > n+n/2 {
		t.Fatalf("%d silent connections added %d goroutines; want about one each", n, grew)
	}
}

func TestPendingCapPerSource(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Limits.PendingPerSource = 3 })
	var open []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		open = append(open, c)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.gate.mu.Lock()
		pending := s.gate.perSource[netip.MustParsePrefix("127.0.0.1/32")]
		s.gate.mu.Unlock()
		if pending == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections pending, want 3", pending)
		}
		time.Sleep(5 * time.Millisecond)
	}
	extra, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := extra.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("a fourth pending connection from one address: read %v, want it closed at once", err)
	}
	// The first three are still held, waiting for their preface.
	open[0].SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := open[0].Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("a connection within the cap: read %v, want it still open", err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestAuthFailuresSlowDownPerSource(t *testing.T) {
	var a authFailures
	base := 250 * time.Millisecond
	var got []time.Duration
	for range 8 {
		got = append(got, a.fail("192.0.2.1", base))
	}
	want := []time.Duration{base, 2 * base, 4 * base, 8 * base, 16 * base, 32 * base, 32 * base, 32 * base}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays %v, want %v", got, want)
		}
	}
	if d := a.fail("192.0.2.2", base); d != base {
		t.Fatalf("another address's first failure waits %v, want %v", d, base)
	}
}
