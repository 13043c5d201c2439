package agent

import (
	"github.com/sluicehq/sluice/internal/testutil"

	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/server"
	"github.com/sluicehq/sluice/transport"
)

// tlsEdge starts an edge whose agent listener uses a certificate from a
// test CA, and returns the CA.
func tlsEdge(t *testing.T) (*edge, *transport.CA) {
	t.Helper()
	ca, err := transport.NewCA("sluice test CA")
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
	return startEdge(t, func(c *server.Config) { c.TLS = scfg }), ca
}

func TestTLSWithCAAndPin(t *testing.T) {
	e, ca := tlsEdge(t)
	caFile := t.TempDir() + "/ca.pem"
	if err := ca.WriteCAFile(caFile); err != nil {
		t.Fatal(err)
	}
	local := testutil.EchoServer(t)
	for name, ct := range map[string]transport.ClientTLS{
		"ca":  {CAFile: caFile},
		"pin": {Pin: mustPin(t, e)},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := ct.Config()
			if err != nil {
				t.Fatal(err)
			}
			as, stop := runAgent(t, e, func(c *Config) { c.TLS = cfg }, Tunnel{Kind: control.KindTCP, Local: local})
			if !strings.HasPrefix(as[0].URL, "tcp://") {
				t.Fatalf("url %q", as[0].URL)
			}
			stop()
		})
	}
}

// mustPin dials the edge once to learn its key's pin, as an operator would
// read it from `sluice server`'s output.
func mustPin(t *testing.T, e *edge) string {
	t.Helper()
	cfg, err := transport.ClientTLS{Pin: strings.Repeat("00", 32)}.Config()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := transport.NewDialer(transport.DefaultTCPOptions(), cfg)
	_, err = d.DialContext(context.Background(), e.srv.Addr().String())
	var pm *transport.PinMismatchError
	if !errors.As(err, &pm) {
		t.Fatalf("dial with a wrong pin: %v, want a PinMismatchError", err)
	}
	return pm.Got
}

func TestTLSUnknownCAIsFatal(t *testing.T) {
	e, _ := tlsEdge(t)
	other, _ := transport.NewCA("some other CA")
	caFile := t.TempDir() + "/other.pem"
	other.WriteCAFile(caFile)
	cfg, err := transport.ClientTLS{CAFile: caFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Server: e.srv.Addr().String(), Token: testToken, TLS: cfg, Tunnels: []Tunnel{{Kind: control.KindTCP, Local: "127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err = a.Run(ctx)
	var te *TLSError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "trust the edge's CA") {
		t.Fatalf("Run against an edge signed by another CA: %v, want a TLSError suggesting to trust its CA (the CLI adds --ca)", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("a certificate error was retried for %v; it cannot heal by itself", time.Since(start))
	}
}

func TestPlainAgentAgainstTLSEdgeFailsClearly(t *testing.T) {
	e, _ := tlsEdge(t)
	a, err := New(Config{Server: e.srv.Addr().String(), Token: testToken, FirstConnectTimeout: 500 * time.Millisecond,
		Tunnels: []Tunnel{{Kind: control.KindTCP, Local: "127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = a.Run(ctx)
	var wp *WrongPeerError
	if !errors.As(err, &wp) || wp.Kind != PeerTLS || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("plain agent, TLS edge: %v, want a WrongPeerError saying the edge speaks TLS", err)
	}
}

func TestMutualTLS(t *testing.T) {
	ca, err := transport.NewCA("sluice mTLS test CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile := dir + "/ca.pem"
	if err := ca.WriteCAFile(caFile); err != nil {
		t.Fatal(err)
	}
	serverCert, _ := ca.Issue("localhost", "127.0.0.1")
	scfg, err := transport.ServerTLS{Certificate: &serverCert, ClientCAFile: caFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	e := startEdge(t, func(c *server.Config) { c.TLS = scfg })
	local := testutil.EchoServer(t)

	// Without a client certificate the edge refuses the agent.
	noCert, _ := transport.ClientTLS{CAFile: caFile}.Config()
	a, err := New(Config{Server: e.srv.Addr().String(), Token: testToken, TLS: noCert, FirstConnectTimeout: 300 * time.Millisecond,
		Tunnels: []Tunnel{{Kind: control.KindTCP, Local: local}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Run(ctx); err == nil {
		t.Fatal("an agent without a client certificate got a session on a mutual-TLS edge")
	}
	if st := e.srv.Stats(); st.Hostnames+st.Ports != 0 {
		t.Fatalf("tunnels registered without a client certificate: %d hosts, %d ports", st.Hostnames, st.Ports)
	}

	clientCert, _ := ca.Issue("agent-1")
	withCert, err := transport.ClientTLS{CAFile: caFile, Certificate: &clientCert}.Config()
	if err != nil {
		t.Fatal(err)
	}
	as, _ := runAgent(t, e, func(c *Config) { c.TLS = withCert }, Tunnel{Kind: control.KindTCP, Local: local})
	if !strings.HasPrefix(as[0].URL, "tcp://") {
		t.Fatalf("url %q", as[0].URL)
	}
}

// Bulk data crosses a TLS session both ways at once, many stream windows'
// worth each way, and every byte comes back in order.
func TestTLSBulkEcho(t *testing.T) {
	e, ca := tlsEdge(t)
	caFile := t.TempDir() + "/ca.pem"
	if err := ca.WriteCAFile(caFile); err != nil {
		t.Fatal(err)
	}
	cfg, err := transport.ClientTLS{CAFile: caFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	local := testutil.EchoServer(t)
	as, _ := runAgent(t, e, func(c *Config) { c.TLS = cfg }, Tunnel{Kind: control.KindTCP, Local: local})
	c, err := net.Dial("tcp", tcpAddrOf(t, as[0].URL))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	msg := make([]byte, 16<<20)
	rand.Read(msg)
	go func() {
		c.Write(msg)
		c.(*net.TCPConn).CloseWrite()
	}()
	back, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if !bytes.Equal(back, msg) {
		t.Fatalf("the echo (%d bytes) differs from the %d bytes sent", len(back), len(msg))
	}
}
