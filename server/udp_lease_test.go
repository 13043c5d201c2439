package server

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/edgetest"
	"github.com/sluicehq/sluice/mux"
)

// UDP ports are leases like names and TCP ports: one owner, refused while
// live, kept across reconnects and restarts, pooled or taken over on request,
// and under the tokens file's port rules.

func TestLiveUDPPortRefusedEvenToTheSameToken(t *testing.T) {
	s := startServer(t, nil)
	_, ctrl := handshake(t, s)
	a := expectAssigned(t, ctrl, control.Register{Ref: 1, Kind: control.KindUDP})
	_, ctrl2 := handshake(t, s)
	expectRefused(t, ctrl2, control.Register{Ref: 1, Kind: control.KindUDP, RemotePort: a.Port}, control.CodePortTaken,
		fmt.Sprintf("UDP port %d", a.Port), "held by a live agent", "take it over")
	// The holder still has it.
	if ep, ok := s.reg.udp.Load(a.Port); !ok || ep.(*endpoint).pick().id != a.Tunnel {
		t.Fatal("the refused claim disturbed the holder")
	}
}

func TestUDPOutOfRangeNamesTheRange(t *testing.T) {
	s := startServer(t, func(c *Config) { c.UDPPortMin, c.UDPPortMax = 40000, 40010 })
	_, ctrl := handshake(t, s)
	ce := expectRefused(t, ctrl, control.Register{Ref: 1, Kind: control.KindUDP, RemotePort: 39999}, control.CodeBadRequest,
		"39999", "outside this edge's UDP port range 40000-40010")
	if ce.Code == control.CodePortTaken {
		t.Fatalf("an out-of-range port was refused as taken: %+v", ce)
	}
}

func TestUDPPortComesBackWithItsLease(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Tokens = []string{"T", "U"} })
	sess, ctrl := agentAs(t, s, "T")
	a := expectAssigned(t, ctrl, control.Register{Ref: 1, Kind: control.KindUDP})
	waitGone(t, s, sess)
	// Another owner is refused the port within the grace ...
	_, u := agentAs(t, s, "U")
	expectRefused(t, u, control.Register{Ref: 1, Kind: control.KindUDP, RemotePort: a.Port}, control.CodePortTaken,
		fmt.Sprintf("UDP port %d is reserved", a.Port))
	// ... and the agent that held it gets it back with its lease.
	_, ctrl2 := agentAs(t, s, "T")
	b := expectAssigned(t, ctrl2, control.Register{Ref: 1, Kind: control.KindUDP, RemotePort: a.Port, Lease: a.Lease})
	if b.Port != a.Port || b.URL != a.URL || b.Lease != a.Lease {
		t.Fatalf("reconnect with the lease got %s (lease %q), want %s (lease %q)", b.URL, b.Lease, a.URL, a.Lease)
	}
}

func TestUDPTakeoverTellsTheHolder(t *testing.T) {
	s := startServer(t, nil)
	oldSess, oldCtrl := handshake(t, s)
	a := expectAssigned(t, oldCtrl, control.Register{Ref: 1, Kind: control.KindUDP})
	newSess, ctrl := handshake(t, s)
	expectAssigned(t, ctrl, control.Register{Ref: 1, Kind: control.KindUDP, RemotePort: a.Port, Takeover: true})
	expectError(t, oldCtrl, control.CodeTakenOver)
	select {
	case <-oldSess.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the replaced session is still open")
	}
	// The port kept its socket and now carries flows to the new agent.
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", a.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello"))
	acceptFlow(t, newSess)
}

// acceptFlow waits for the edge to open a flow's stream on sess.
func acceptFlow(t *testing.T, sess *mux.Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := sess.AcceptStream(ctx)
	if err != nil {
		t.Fatalf("no flow reached the agent: %v", err)
	}
	if h, err := control.ReadHeader(st); err != nil || h.RemoteAddr == "" {
		t.Fatalf("flow header %+v, %v", h, err)
	}
	st.Close()
}

func TestPooledUDPAgentsShareFlows(t *testing.T) {
	s := startServer(t, nil)
	sessA, ctrlA := handshake(t, s)
	a := expectAssigned(t, ctrlA, control.Register{Ref: 1, Kind: control.KindUDP, Pool: true})
	sessB, ctrlB := handshake(t, s)
	expectAssigned(t, ctrlB, control.Register{Ref: 1, Kind: control.KindUDP, RemotePort: a.Port, Pool: true})
	// Two public sources are two flows, handed to the members in turn.
	for range 2 {
		c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", a.Port))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("hello"))
	}
	acceptFlow(t, sessA)
	acceptFlow(t, sessB)
	// The port stays up while one member is connected.
	waitGone(t, s, sessA)
	if ep, ok := s.reg.udp.Load(a.Port); !ok || ep.(*endpoint).size() != 1 {
		t.Fatal("the pool went down with one of its two agents")
	}
}

func TestUDPLeaseSurvivesAnEdgeRestart(t *testing.T) {
	dir := t.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	e1 := edgetest.Start(t, New, Config{Listen: listen, Tokens: []string{"T"}, StateDir: dir})
	_, ctrl := handshake(t, e1.S)
	p := expectAssigned(t, ctrl, control.Register{Ref: 1, Kind: control.KindUDP})
	if err := e1.Stop(); err != nil {
		t.Fatal(err)
	}

	s2 := startServer(t, func(c *Config) { c.Listen, c.StateDir, c.Tokens = listen, dir, []string{"T", "U"} })
	_, u := agentAs(t, s2, "U")
	expectRefused(t, u, control.Register{Ref: 1, Kind: control.KindUDP, RemotePort: p.Port}, control.CodePortTaken, "reserved")
	_, ctrl2 := agentAs(t, s2, "T")
	p2 := expectAssigned(t, ctrl2, control.Register{Ref: 1, Kind: control.KindUDP, RemotePort: p.Port, Lease: p.Lease})
	if p2.Port != p.Port {
		t.Fatalf("after the restart: port %d, want %d", p2.Port, p.Port)
	}
}

func TestTokensFilePortsCoverUDP(t *testing.T) {
	rules, err := LoadTokensFile(writeTokensFile(t, `
tokens:
  - token: alice-secret
    owner: alice
    ports: ["41030-41039"]
`))
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, func(c *Config) { c.Tokens = nil; c.TokenRules = rules })
	_, alice := agentAs(t, s, "alice-secret")
	expectRefused(t, alice, control.Register{Ref: 1, Kind: control.KindUDP, RemotePort: 41350}, control.CodeForbidden,
		"41030-41039", "41350")
	for i := range 3 {
		p := expectAssigned(t, alice, control.Register{Ref: uint32(i + 2), Kind: control.KindUDP})
		if p.Port < 41030 || p.Port > 41039 {
			t.Fatalf("random UDP port %d outside alice's ports", p.Port)
		}
	}
}
