package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/proxyproto"
	"github.com/sluicehq/sluice/server"
)

// proxiedConn is what a PROXY-aware local service learned from one
// connection: the header and the bytes after it.
type proxiedConn struct {
	hdr  proxyproto.Header
	err  error
	data string
}

// proxyService is a local TCP service that parses the PROXY header of every
// connection, answers "hello <source>\n" and reports what it read.
func proxyService(t *testing.T) (addr string, conns chan proxiedConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = make(chan proxiedConn, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				h, err := proxyproto.Read(br)
				if err == nil {
					fmt.Fprintf(c, "hello %s\n", h.Source)
				}
				rest, _ := io.ReadAll(br)
				conns <- proxiedConn{hdr: h, err: err, data: string(rest)}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), conns
}

func recvConn(t *testing.T, conns chan proxiedConn) proxiedConn {
	t.Helper()
	select {
	case pc := <-conns:
		return pc
	case <-time.After(10 * time.Second):
		t.Fatal("the local service got no connection")
	}
	return proxiedConn{}
}

// TestPROXYHeaderNamesTheDirectClient: a public client connects to a TCP
// tunnel directly (IPv4 and IPv6); the local service reads a header with the
// client's address and the tunnel port it connected to.
func TestPROXYHeaderNamesTheDirectClient(t *testing.T) {
	for _, tc := range []struct{ version, host string }{{"v1", "127.0.0.1"}, {"v2", "127.0.0.1"}, {"v1", "::1"}, {"v2", "::1"}} {
		t.Run(tc.version+" "+tc.host, func(t *testing.T) {
			if tc.host == "::1" {
				needIPv6(t)
			}
			local, conns := proxyService(t)
			e := startEdge(t, func(c *server.Config) { c.TCPHost = tc.host })
			as, _ := runAgent(t, e, nil, Tunnel{Kind: control.KindTCP, Local: local, ProxyProtocol: tc.version})
			if as[0].ProxyProtocol != tc.version {
				t.Fatalf("assigned %+v does not confirm the PROXY protocol", as[0])
			}
			c, err := net.Dial("tcp", tcpAddrOf(t, as[0].URL))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte("payload"))
			c.(*net.TCPConn).CloseWrite()
			greeting, _ := bufio.NewReader(c).ReadString('\n')
			got := recvConn(t, conns)
			if got.err != nil {
				t.Fatalf("local service could not parse the header: %v", got.err)
			}
			want := c.LocalAddr().(*net.TCPAddr).AddrPort()
			wantDst := c.RemoteAddr().(*net.TCPAddr).AddrPort()
			if got.hdr.Version != map[string]int{"v1": 1, "v2": 2}[tc.version] || got.hdr.Source != want || got.hdr.Dest != wantDst {
				t.Fatalf("header %+v, want version %s from %s to %s", got.hdr, tc.version, want, wantDst)
			}
			if got.data != "payload" || greeting != "hello "+want.String()+"\n" {
				t.Fatalf("data %q, greeting %q", got.data, greeting)
			}
		})
	}
}

// TestPROXYFromTrustedLoadBalancer: the edge sits behind a load balancer
// (this test, on 127.0.0.1, in the trusted range) that sends its own PROXY
// header; the local service sees the client the balancer named, IPv6
// included, not the balancer.
func TestPROXYFromTrustedLoadBalancer(t *testing.T) {
	for _, tc := range []struct {
		lbVersion, tunnelVersion int
		src, dst                 string
	}{
		{proxyproto.V1, 2, "203.0.113.7:40001", "198.51.100.1:443"},
		{proxyproto.V2, 1, "[2001:db8::7]:40002", "[2001:db8::1]:443"},
		{proxyproto.V2, 2, "[2001:db8::8]:40003", "[2001:db8::1]:8443"},
	} {
		t.Run(fmt.Sprintf("lb v%d tunnel v%d %s", tc.lbVersion, tc.tunnelVersion, tc.src), func(t *testing.T) {
			local, conns := proxyService(t)
			e := startEdge(t, func(c *server.Config) { c.AcceptProxyProtocol = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
			as, _ := runAgent(t, e, nil, Tunnel{Kind: control.KindTCP, Local: local, ProxyProtocol: fmt.Sprintf("v%d", tc.tunnelVersion)})
			c, err := net.Dial("tcp", tcpAddrOf(t, as[0].URL))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			src, dst := netip.MustParseAddrPort(tc.src), netip.MustParseAddrPort(tc.dst)
			c.Write(append(proxyproto.Append(nil, tc.lbVersion, src, dst), "data"...))
			c.(*net.TCPConn).CloseWrite()
			greeting, _ := bufio.NewReader(c).ReadString('\n')
			got := recvConn(t, conns)
			if got.err != nil || got.hdr.Version != tc.tunnelVersion || got.hdr.Source != src || got.hdr.Dest != dst || got.data != "data" {
				t.Fatalf("local service got %+v, want v%d %s -> %s with data %q", got, tc.tunnelVersion, src, dst, "data")
			}
			if greeting != "hello "+src.String()+"\n" {
				t.Fatalf("greeting %q", greeting)
			}
		})
	}
}

// TestPROXYForgedByUntrustedClient: a client outside the trusted range
// sends a PROXY header of its own over a raw socket. The edge refuses the
// connection: the local service is told the client's real address and
// never receives the forged bytes.
func TestPROXYForgedByUntrustedClient(t *testing.T) {
	for _, version := range []int{proxyproto.V1, proxyproto.V2} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			local, conns := proxyService(t)
			e := startEdge(t, func(c *server.Config) { c.AcceptProxyProtocol = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} })
			as, _ := runAgent(t, e, nil, Tunnel{Kind: control.KindTCP, Local: local, ProxyProtocol: "v2"})
			c, err := net.Dial("tcp", tcpAddrOf(t, as[0].URL))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			forged := proxyproto.Append(nil, version, netip.MustParseAddrPort("10.1.2.3:1"), netip.MustParseAddrPort("10.1.2.4:2"))
			c.Write(append(forged, "after the forged header"...))
			// The edge closes the connection.
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.Copy(io.Discard, c); isTimeout(err) {
				t.Fatal("the edge kept a connection that sent a forged PROXY header")
			}
			forgedFrom := c.LocalAddr().(*net.TCPAddr).AddrPort()
			// The edge may refuse before the agent reaches the local service,
			// or just after: then the service saw the real address and no
			// data. A legitimate connection after it marks the end.
			ok, err := net.Dial("tcp", tcpAddrOf(t, as[0].URL))
			if err != nil {
				t.Fatal(err)
			}
			defer ok.Close()
			ok.Write([]byte("legit"))
			ok.(*net.TCPConn).CloseWrite()
			legitFrom := ok.LocalAddr().(*net.TCPAddr).AddrPort()
			for {
				got := recvConn(t, conns)
				if got.err == nil && got.hdr.Source == legitFrom {
					if got.data != "legit" {
						t.Fatalf("legitimate connection carried %q", got.data)
					}
					break
				}
				if got.err == nil && got.hdr.Source != forgedFrom {
					t.Fatalf("local service was told %s, neither client's real address", got.hdr.Source)
				}
				if strings.Contains(got.data, "forged") {
					t.Fatalf("forged bytes reached the local service: %q", got.data)
				}
			}
		})
	}
}

// TestPROXYOverPipedHTTP: an HTTP tunnel that pipes bytes gets a header on
// every stream, and no stream carries two clients: two clients, and two
// requests on one keep-alive connection, each arrive with their own
// client's address.
func TestPROXYOverPipedHTTP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.RemoteAddr)
	})}
	// The service reads the header itself: its listener parses it and
	// reports the source as RemoteAddr.
	pl := &proxyproto.Listener{Listener: ln, Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	go srv.Serve(pl)
	t.Cleanup(func() { srv.Close() })
	e := startEdge(t, nil)
	runAgent(t, e, nil, Tunnel{Kind: control.KindHTTP, Name: "pp", Local: ln.Addr().String(), ProxyProtocol: "v1"})
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", e.srv.HTTPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		for j := 0; j < 2; j++ {
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: pp.localhost\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := c.LocalAddr().String(); string(b) != want {
				t.Fatalf("client %d request %d: local service saw %q, want %q", i, j, b, want)
			}
		}
		c.Close()
	}
}

func TestPROXYRefusedWhereItCannotWork(t *testing.T) {
	base := Config{Server: "127.0.0.1:1", Token: "t"}
	cases := []struct {
		name string
		t    Tunnel
		want string
	}{
		{"udp", Tunnel{Kind: control.KindUDP, Local: "127.0.0.1:53", ProxyProtocol: "v1"}, "UDP"},
		{"http parsing requests", Tunnel{Kind: control.KindHTTP, Local: "127.0.0.1:80", LogRequests: true, ProxyProtocol: "v2"}, "request logging off"},
		{"bad version", Tunnel{Kind: control.KindTCP, Local: "127.0.0.1:80", ProxyProtocol: "v3"}, "use v1 or v2"},
	}
	for _, c := range cases {
		cfg := base
		cfg.Tunnels = []Tunnel{c.t}
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: New = %v, want an error mentioning %q", c.name, err, c.want)
		}
	}
}

// TestPROXYAtTheHTTPIngress: behind a trusted load balancer the HTTP
// ingress takes the client from the balancer's header (X-Forwarded-For
// names it), and refuses a balancer connection that carries no header.
func TestPROXYAtTheHTTPIngress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Header.Get("X-Forwarded-For"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	e := startEdge(t, func(c *server.Config) { c.AcceptProxyProtocol = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} })
	runAgent(t, e, nil, Tunnel{Kind: control.KindHTTP, Name: "lb", Local: ln.Addr().String(), LogRequests: true})

	c, err := net.Dial("tcp", e.srv.HTTPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(proxyproto.Append(nil, proxyproto.V2, netip.MustParseAddrPort("[2001:db8::42]:5000"), netip.MustParseAddrPort("[2001:db8::1]:80")))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: lb.localhost\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "2001:db8::42" {
		t.Fatalf("X-Forwarded-For = %q, want the client the balancer named", b)
	}

	bare, err := net.Dial("tcp", e.srv.HTTPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	fmt.Fprintf(bare, "GET / HTTP/1.1\r\nHost: lb.localhost\r\n\r\n")
	bare.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := io.Copy(io.Discard, bare); n != 0 || isTimeout(err) {
		t.Fatalf("a trusted peer without a header got %d bytes back (err %v), want the connection closed", n, err)
	}
}

// TestPROXYNeedsAnEdgeThatHonoursIt: an edge that predates the field does
// not echo it; the agent stops rather than send headers naming the wrong
// client.
func TestPROXYNeedsAnEdgeThatHonoursIt(t *testing.T) {
	ts := &tunnelState{cfg: Tunnel{Kind: control.KindTCP, Local: "127.0.0.1:1", ProxyProtocol: "v1"}}
	err := ts.checkAssigned(control.Assigned{Ref: 1, Kind: control.KindTCP}, "edge.example:7835")
	var ce *control.Error
	if !errors.As(err, &ce) || ce.Code != control.CodeBadRequest || !strings.Contains(ce.Message, "edge.example:7835") {
		t.Fatalf("checkAssigned without the echo = %v, want bad_request naming the edge", err)
	}
	if fatal(err) == false {
		t.Fatal("the agent would retry a refusal that no retry can fix")
	}
	if err := ts.checkAssigned(control.Assigned{Ref: 1, ProxyProtocol: "v1"}, "e"); err != nil {
		t.Fatalf("echoed: %v", err)
	}
}
