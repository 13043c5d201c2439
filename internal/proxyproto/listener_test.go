package proxyproto

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// accepted starts a Listener on loopback trusting the given prefixes, dials
// it, and returns both ends of the one connection.
func accepted(t *testing.T, trusted ...string) (client net.Conn, server *Conn, refused chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused = make(chan error, 1)
	pl := &Listener{Listener: ln, HeaderTimeout: 2 * time.Second, OnRefused: func(_ net.Addr, err error) { refused <- err }}
	for _, p := range trusted {
		pl.Trusted = append(pl.Trusted, netip.MustParsePrefix(p))
	}
	t.Cleanup(func() { ln.Close() })
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c, err := pl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return client, c.(*Conn), refused
}

func TestTrustedPeerHeaderSetsAddresses(t *testing.T) {
	for _, v := range []int{V1, V2} {
		for _, pair := range [][2]string{{"203.0.113.9:4711", "198.51.100.2:443"}, {"[2001:db8::9]:4711", "[2001:db8::2]:443"}} {
			client, conn, _ := accepted(t, "127.0.0.0/8")
			src, dst := ap(pair[0]), ap(pair[1])
			// Header and data in one write: what is read past the header
			// must still reach the reader.
			client.Write(append(Append(nil, v, src, dst), "hello"...))
			if got := conn.RemoteAddr().String(); got != src.String() {
				t.Fatalf("v%d RemoteAddr = %s, want %s", v, got, src)
			}
			if got := conn.LocalAddr().String(); got != dst.String() {
				t.Fatalf("v%d LocalAddr = %s, want %s", v, got, dst)
			}
			buf := make([]byte, 5)
			if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "hello" {
				t.Fatalf("v%d data after the header: %q, %v", v, buf, err)
			}
		}
	}
}

func TestTrustedPeerWithoutHeaderIsRefused(t *testing.T) {
	client, conn, refused := accepted(t, "127.0.0.1/32")
	client.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	if _, err := conn.Read(make([]byte, 10)); !errors.Is(err, ErrMissing) {
		t.Fatalf("Read = %v, want ErrMissing", err)
	}
	if err := <-refused; !errors.Is(err, ErrMissing) {
		t.Fatalf("OnRefused got %v", err)
	}
	// The client sees its connection closed.
	client.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Fatal("client read data from a refused connection")
	}
}

func TestTrustedPeerSilentTimesOut(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	pl := &Listener{Listener: ln, Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, HeaderTimeout: 50 * time.Millisecond}
	client, _ := net.Dial("tcp", ln.Addr().String())
	defer client.Close()
	c, _ := pl.Accept()
	defer c.Close()
	err := c.(*Conn).Resolve()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Resolve on a silent trusted peer = %v, want a timeout", err)
	}
}

func TestTrustedPeerLocalCommandKeepsSocketAddress(t *testing.T) {
	client, conn, _ := accepted(t, "127.0.0.0/8")
	client.Write(Append(nil, V2, netip.AddrPort{}, netip.AddrPort{}))
	if err := conn.Resolve(); err != nil {
		t.Fatal(err)
	}
	if got, want := conn.RemoteAddr().String(), client.LocalAddr().String(); got != want {
		t.Fatalf("RemoteAddr after LOCAL = %s, want the socket's %s", got, want)
	}
}

func TestUntrustedForgedHeaderIsRefused(t *testing.T) {
	forged := map[string][]byte{
		"v1": Append(nil, V1, ap("1.2.3.4:5"), ap("6.7.8.9:10")),
		"v2": Append(nil, V2, ap("1.2.3.4:5"), ap("6.7.8.9:10")),
	}
	for name, hdr := range forged {
		t.Run(name, func(t *testing.T) {
			client, conn, refused := accepted(t, "10.0.0.0/8")
			// Sent a byte at a time: the check must not decide on a prefix.
			go func() {
				for _, b := range hdr {
					client.Write([]byte{b})
				}
			}()
			if _, err := io.ReadAll(conn); !errors.Is(err, ErrUntrusted) {
				t.Fatalf("Read = %v, want ErrUntrusted", err)
			}
			<-refused
			if got, want := conn.RemoteAddr().String(), client.LocalAddr().String(); got != want {
				t.Fatalf("RemoteAddr = %s, want the socket's %s", got, want)
			}
		})
	}
}

func TestUntrustedPlainDataPassesUnchanged(t *testing.T) {
	for _, data := range []string{"GET / HTTP/1.1\r\n\r\n", "PROXZ", "P", "\r\n\r\nX", "\r\n"} {
		client, conn, _ := accepted(t, "10.0.0.0/8")
		client.Write([]byte(data))
		client.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(conn)
		if err != nil || string(got) != data {
			t.Fatalf("read %q, %v; want %q", got, err, data)
		}
	}
}

func TestUntrustedServerSpeaksFirst(t *testing.T) {
	client, conn, _ := accepted(t, "10.0.0.0/8")
	// Nothing waits for the client's first bytes: the greeting goes out and
	// the client's answer comes back through the check.
	if _, err := conn.Write([]byte("220 ready\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 11)
	if _, err := io.ReadFull(client, buf); err != nil {
		t.Fatal(err)
	}
	client.Write([]byte("HELO x\r\n"))
	buf = make([]byte, 8)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "HELO x\r\n" {
		t.Fatalf("%q %v", buf, err)
	}
}

func TestSyscallConnOnlyWhenNothingIsPending(t *testing.T) {
	client, conn, _ := accepted(t, "127.0.0.0/8")
	client.Write(append(Append(nil, V1, ap("1.2.3.4:5"), ap("6.7.8.9:10")), 'x'))
	conn.Resolve()
	if _, err := conn.SyscallConn(); err == nil {
		t.Fatal("SyscallConn with a byte read past the header must fail, or the reader would skip it")
	}
	conn.Read(make([]byte, 1))
	if _, err := conn.SyscallConn(); err != nil {
		t.Fatalf("SyscallConn after the pending byte was read: %v", err)
	}
}
