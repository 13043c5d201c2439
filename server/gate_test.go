package server

import (
	"net"
	"net/netip"
	"testing"
)

// fakeConn is a connection from addr that records being closed.
type fakeConn struct {
	net.Conn
	addr   net.Addr
	closed bool
}

func (c *fakeConn) RemoteAddr() net.Addr { return c.addr }
func (c *fakeConn) Close() error         { c.closed = true; return nil }

func from(ip string) *fakeConn {
	return &fakeConn{addr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 40000))}
}

var gateLimits = Limits{Pending: 6, PendingPerSource: 2, PendingPerPrefix: 4}

func TestGateGroupsSourcesByPrefix(t *testing.T) {
	for _, tc := range []struct{ a, b, same string }{
		{"10.1.2.3", "10.1.2.3", "source"},
		{"10.1.2.3", "10.1.2.4", "network"},
		{"10.1.2.3", "10.1.3.3", ""},
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "source"}, // one /64
		{"2001:db8:1:2::1", "2001:db8:1:3::1", "network"},     // one /48
		{"2001:db8:1:2::1", "2001:db8:2:2::1", ""},
		{"::ffff:10.1.2.3", "10.1.2.3", "source"}, // IPv4-mapped is IPv4
	} {
		a, b := netip.MustParseAddr(tc.a), netip.MustParseAddr(tc.b)
		sameSrc, sameNet := source(a) == source(b), network(a) == network(b)
		want := map[string][2]bool{"source": {true, true}, "network": {false, true}, "": {false, false}}[tc.same]
		if sameSrc != want[0] || sameNet != want[1] {
			t.Errorf("%s and %s: same source %v, same network %v; want %v, %v", tc.a, tc.b, sameSrc, sameNet, want[0], want[1])
		}
	}
}

func TestGatePerSourceBoundRefuses(t *testing.T) {
	var g gate
	for range 2 {
		if p, why := g.enter(from("2001:db8::1"), gateLimits); p == nil {
			t.Fatalf("refused within the bound: %s", why)
		}
	}
	// Another address of the same /64 is the same source.
	if p, _ := g.enter(from("2001:db8::ffff"), gateLimits); p != nil {
		t.Fatal("a third connection from one IPv6 /64 was admitted; want refused")
	}
}

func TestGatePrefixBoundDropsThatNetworksOldestSilent(t *testing.T) {
	var g gate
	var flood []*fakeConn
	for i := range 4 {
		c := from("10.9.9." + string(rune('1'+i)))
		flood = append(flood, c)
		if p, why := g.enter(c, gateLimits); p == nil {
			t.Fatalf("refused within the bound: %s", why)
		}
	}
	other := from("10.8.8.8")
	if p, _ := g.enter(other, gateLimits); p == nil {
		t.Fatal("a connection from another network was refused")
	}
	if p, _ := g.enter(from("10.9.9.100"), gateLimits); p == nil {
		t.Fatal("a fifth connection of one /24 was refused; want the network's oldest silent one dropped for it")
	}
	if !flood[0].closed || flood[1].closed || other.closed {
		t.Fatalf("dropped: first %v, second %v, other network %v; want only the network's oldest", flood[0].closed, flood[1].closed, other.closed)
	}
	if g.total != 5 || g.evictions() != 1 {
		t.Fatalf("total %d, evictions %d; want 5 and 1", g.total, g.evictions())
	}
}

func TestGateTotalBoundDropsOldestSilentNeverOneThatSpoke(t *testing.T) {
	var g gate
	var ps []*pending
	var cs []*fakeConn
	for i := range 6 {
		c := from(netip.AddrFrom4([4]byte{10, byte(i), 0, 1}).String())
		p, why := g.enter(c, gateLimits)
		if p == nil {
			t.Fatalf("refused within the bound: %s", why)
		}
		ps, cs = append(ps, p), append(cs, c)
	}
	g.spoke(ps[0]) // the oldest is an agent in its handshake
	np, _ := g.enter(from("10.200.0.1"), gateLimits)
	if np == nil {
		t.Fatal("a newcomer was refused while silent connections could make room")
	}
	if cs[0].closed || !cs[1].closed {
		t.Fatalf("dropped the one that spoke (%v) or kept the oldest silent one (%v)", cs[0].closed, !cs[1].closed)
	}
	// Once every held connection has spoken, there is nothing to drop.
	for _, p := range append(ps[2:], np) {
		g.spoke(p)
	}
	if p, _ := g.enter(from("10.201.0.1"), gateLimits); p != nil {
		t.Fatal("admitted beyond the total bound with no silent connection to drop")
	}
	// Leaving twice, or after being dropped, counts once.
	g.leave(ps[1])
	g.leave(ps[0])
	g.leave(ps[0])
	if g.total != 5 {
		t.Fatalf("total %d after two leaves (one of them dropped before), want 5", g.total)
	}
}
