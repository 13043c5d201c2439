package testutil

import (
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
)

// Listen listens on a free loopback port and closes the listener at cleanup.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// FreeAddr returns a loopback host:port that was free a moment ago. Another
// process may take it before the caller binds it; tests that restart a
// server on the same address use it.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// FreePort is FreeAddr's port.
func FreePort(t testing.TB) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(FreeAddr(t))
	n, _ := strconv.Atoi(port)
	return n
}

// TCPPair returns the two ends of one loopback TCP connection, both closed at
// cleanup.
func TCPPair(t testing.TB) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
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
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c2 := <-ch
	if c2 == nil {
		c1.Close()
		t.Fatal("accept on the loopback listener failed")
	}
	t.Cleanup(func() { c1.Close(); c2.Close() })
	return c1.(*net.TCPConn), c2.(*net.TCPConn)
}

// Serve runs handle for every connection accepted on a free loopback port
// and returns the address. At cleanup the listener closes and Serve waits
// for every handler to return (each handler must end when its peer closes).
func Serve(t testing.TB, handle func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// FreePortPair returns a loopback host:port whose port and the next one
// were both free a moment ago: a fleet edge's address, whose embedded store
// routes listen on the next port.
//
// The pair is drawn below Linux's ephemeral range (32768 and up) first:
// there, the kernel hands even ports to outgoing connections and odd ones
// to listeners, so beside a port a listener got, the next is often the
// local end of some connection while other tests make many.
func FreePortPair(t testing.TB) string {
	t.Helper()
	pair := func(port int) (string, bool) {
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return "", false
		}
		defer ln.Close()
		port = ln.Addr().(*net.TCPAddr).Port
		next, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1))
		if err != nil {
			return "", false
		}
		next.Close()
		return ln.Addr().String(), true
	}
	for range 100 {
		if addr, ok := pair(20000 + rand.IntN(12000)); ok {
			return addr
		}
	}
	for range 100 {
		if addr, ok := pair(0); ok {
			return addr
		}
	}
	t.Fatal("no two free adjacent ports on loopback")
	return ""
}
