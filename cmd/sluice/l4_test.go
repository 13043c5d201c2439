package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/edgetest"
	"github.com/sluicehq/sluice/internal/proxyproto"
	"github.com/sluicehq/sluice/internal/testutil"
	"github.com/sluicehq/sluice/server"
)

func TestParsePrefixes(t *testing.T) {
	got, err := parsePrefixes("10.0.0.0/8, 192.0.2.7,2001:db8::/32,10.1.2.3/16")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "10.1.0.0/16"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	for _, bad := range []string{"", ",", "10.0.0.0/33", "example.com"} {
		if _, err := parsePrefixes(bad); err == nil {
			t.Errorf("parsePrefixes(%q) accepted it", bad)
		}
	}
}

func TestL4UsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"udp", "--server", "x:1", "--token", "T"}, "exactly one local service"},
		{[]string{"udp", "53", "--remote-port", "70000", "--server", "x:1", "--token", "T"}, "out of range"},
		{[]string{"tcp", "22", "--proxy-protocol", "v3", "--server", "x:1", "--token", "T"}, "use v1 or v2"},
		{[]string{"http", "3000", "--proxy-protocol", "v1", "--server", "x:1", "--token", "T"}, "--log-requests=false"},
		{[]string{"server", "--token", "T", "--udp-ports", "9-1"}, "--udp-ports"},
		{[]string{"server", "--token", "T", "--accept-proxy-protocol", "lb.example.com"}, "neither a CIDR"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := run(c.args, &stdout, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("sluice %v: exit %d, stderr %q; want %d and %q", c.args, code, stderr.String(), exitUsage, c.want)
		}
	}
}

// TestUDPPortHasOneOwner runs the real binary: a second `sluice udp` on a
// port a live agent holds exits 5 and names the holder; --takeover replaces
// the holder, which exits 5 saying so; a port outside --udp-ports is a
// usage error naming the range.
func TestUDPPortHasOneOwner(t *testing.T) {
	listen := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	srv := startProc(t, "server", "--listen", listen, "--token", "T", "--insecure", "--udp-ports", "42200-42299")
	srv.waitLine(`agents connect to`)
	agentArgs := func(extra ...string) []string {
		return append([]string{"udp", "127.0.0.1:30054", "--server", listen, "--token", "T", "--insecure"}, extra...)
	}
	a := startProc(t, agentArgs("--remote-port", "42272")...)
	a.waitLine(`^Forwarding udp://127\.0\.0\.1:42272 -> `)

	b := startProc(t, agentArgs("--remote-port", "42272")...)
	if code := b.wait(); code != exitConflict || !strings.Contains(b.stderr.String(), "UDP port 42272 is held by a live agent") {
		t.Fatalf("the second agent exited %d, want %d naming the holder; stderr:\n%s", code, exitConflict, b.stderr.String())
	}

	c := startProc(t, agentArgs("--remote-port", "42272", "--takeover")...)
	c.waitLine(`^Forwarding udp://127\.0\.0\.1:42272 -> `)
	if code := a.wait(); code != exitConflict || !strings.Contains(a.stderr.String(), "taken over") {
		t.Fatalf("the replaced agent exited %d, want %d saying it was taken over; stderr:\n%s", code, exitConflict, a.stderr.String())
	}

	d := startProc(t, agentArgs("--remote-port", "30872")...)
	if code := d.wait(); code != exitUsage || !strings.Contains(d.stderr.String(), "outside this edge's UDP port range 42200-42299") || strings.Contains(d.stderr.String(), "--takeover") {
		t.Fatalf("an agent asking for a port outside --udp-ports exited %d, want %d naming the range without takeover advice; stderr:\n%s", code, exitUsage, d.stderr.String())
	}
}

// TestSmokeUDPAndProxyProtocol runs the real binary: an edge with
// --udp-ports and --accept-proxy-protocol, `sluice udp` in front of a UDP
// service, and `sluice tcp --proxy-protocol v2` in front of a service that
// parses the header.
func TestSmokeUDPAndProxyProtocol(t *testing.T) {
	listen := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	srv := startProc(t, "server", "--listen", listen, "--token", "T", "--insecure", "--udp-ports", "42000-42100", "--accept-proxy-protocol", "10.0.0.0/8")
	srv.waitLine(`agents connect to`)

	// UDP: an upper-casing service.
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 65535)
		for {
			n, src, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			pc.WriteToUDPAddrPort(bytes.ToUpper(buf[:n]), src)
		}
	}()
	ua := startProc(t, "udp", pc.LocalAddr().String(), "--server", listen, "--token", "T", "--insecure")
	m := ua.waitLine(`^Forwarding udp://127\.0\.0\.1:(\d+) -> `)
	port, _ := strconv.Atoi(m[1])
	if port < 42000 || port > 42100 {
		t.Fatalf("UDP tunnel on port %d, outside --udp-ports", port)
	}
	c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var reply string
	buf := make([]byte, 100)
	for attempt := 0; attempt < 5 && reply == ""; attempt++ {
		c.Write([]byte("ping"))
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := c.Read(buf); err == nil {
			reply = string(buf[:n])
		}
	}
	if reply != "PING" {
		t.Fatalf("UDP reply %q, want PING", reply)
	}

	// TCP with a PROXY header to the local service.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				h, err := proxyproto.Read(bufio.NewReader(conn))
				if err != nil {
					fmt.Fprintf(conn, "error %v", err)
					return
				}
				fmt.Fprintf(conn, "v%d %s", h.Version, h.Source)
			}()
		}
	}()
	tp := startProc(t, "tcp", ln.Addr().String(), "--server", listen, "--token", "T", "--insecure", "--proxy-protocol", "v2")
	m = tp.waitLine(fmt.Sprintf(`^Forwarding (tcp://[^ ]+) -> %s$`, regexp.QuoteMeta(ln.Addr().String())))
	tc, err := net.Dial("tcp", strings.TrimPrefix(m[1], "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	got, _ := io.ReadAll(tc)
	if want := "v2 " + tc.LocalAddr().(*net.TCPAddr).AddrPort().String(); string(got) != want {
		t.Fatalf("local service said %q, want %q", got, want)
	}
	tc.Close()

	for _, p := range []*proc{tp, ua, srv} {
		if code := p.stop(syscall.SIGTERM); code != 0 {
			t.Errorf("%v exited %d after SIGTERM; stderr:\n%s", p.cmd.Args, code, p.stderr.String())
		}
	}
}

func TestStartRunsUDPTunnels(t *testing.T) {
	srv := edgetest.Start(t, server.New, server.Config{Listen: edgetest.Loopback, Tokens: []string{"T"}}).S

	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, src, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			pc.WriteToUDPAddrPort(append([]byte("re:"), buf[:n]...), src)
		}
	}()
	file := writeFile(t, fmt.Sprintf("server: %s\ntoken: T\ninsecure: true\nlog_level: warn\ntunnels:\n  - type: udp\n    local: %s\n", srv.Addr(), pc.LocalAddr()))
	t.Setenv("SLUICE_SERVER", "")
	t.Setenv("SLUICE_TOKEN", "")
	out := &lineWriter{lines: make(chan string, 10)}
	agentCtx, stopAgent := context.WithCancel(context.Background())
	defer stopAgent()
	done := make(chan error, 1)
	go func() { done <- runStart(agentCtx, []string{"-c", file}, out, io.Discard) }()
	var url string
	select {
	case l := <-out.lines:
		url = regexp.MustCompile(`^Forwarding udp://(\S+) -> `).FindStringSubmatch(l)[1]
	case err := <-done:
		t.Fatalf("start ended early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("start printed no tunnel URL in 10 s")
	}
	ua, _ := net.ResolveUDPAddr("udp", url)
	c, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var reply string
	buf := make([]byte, 100)
	for attempt := 0; attempt < 5 && reply == ""; attempt++ {
		c.Write([]byte("q"))
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := c.Read(buf); err == nil {
			reply = string(buf[:n])
		}
	}
	if reply != "re:q" {
		t.Fatalf("reply %q, want re:q", reply)
	}
	stopAgent()
	if err := <-done; err != nil {
		t.Fatalf("start after its context ended: %v", err)
	}
}
