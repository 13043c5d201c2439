package server

import (
	"container/list"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// The gate holds agent connections that have not sent their preface yet
// (silent ones) and those in their handshake, bounded three ways: per
// source, per network prefix, and in all. A source is an IPv4 address or an
// IPv6 /64 (what one host usually has); a prefix is an IPv4 /24 or an IPv6
// /48, so a flood from many addresses of one network counts as one.
//
// At a bound, the gate does not refuse a newcomer while it holds a silent
// connection it can drop instead: it closes the oldest silent one (of the
// newcomer's prefix at the prefix bound, of all at the total bound). A real
// agent sends its preface at once and stops being silent within a round
// trip, so however many silent connections a distributed flood opens, an
// agent gets in; a flood of connections that do speak is bounded by the
// handshake timeout and the per-source bound.

// source is what per-source bounds count: an IPv4 address, or the /64 of
// an IPv6 one.
func source(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}

// network is what per-prefix bounds count: an IPv4 /24 or an IPv6 /48.
func network(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is4() {
		p, _ := a.Prefix(24)
		return p
	}
	p, _ := a.Prefix(48)
	return p
}

// remoteAddr is the IP address of a connection's peer.
func remoteAddr(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// sourceIP names a connection's source for limits and logs: the address,
// or an IPv6 address's /64.
func sourceIP(a net.Addr) string {
	ip := remoteAddr(a)
	if !ip.IsValid() {
		return a.String()
	}
	if ip.Is4() {
		return ip.String()
	}
	return source(ip).String()
}

// pending is one connection in the gate.
type pending struct {
	conn   net.Conn
	src    netip.Prefix
	net    netip.Prefix
	since  time.Time
	silent *list.Element // in gate.silent while no preface has come; nil after
	inNet  *list.Element // in its network's list of silent ones, likewise
	gone   bool          // left or evicted: counted out already
}

// gate counts connections that have not authenticated and chooses which
// silent ones to drop. Its methods are safe for concurrent use.
type gate struct {
	mu        sync.Mutex
	total     int
	perSource map[netip.Prefix]int
	perNet    map[netip.Prefix]int
	silent    list.List                   // *pending, oldest first
	netSilent map[netip.Prefix]*list.List // the same, per network
	evicted   int                         // silent connections dropped to make room, in all
}

// enter admits conn, dropping a silent connection to make room if a bound
// is reached, or refuses it with the reason.
func (g *gate) enter(conn net.Conn, lim Limits) (p *pending, reason string) {
	ip := remoteAddr(conn.RemoteAddr())
	src, nw := source(ip), network(ip)
	g.mu.Lock()
	if g.perSource == nil {
		g.perSource, g.perNet, g.netSilent = map[netip.Prefix]int{}, map[netip.Prefix]int{}, map[netip.Prefix]*list.List{}
	}
	var drop []*pending
	if n := g.perSource[src]; n >= lim.PendingPerSource {
		g.mu.Unlock()
		return nil, fmt.Sprintf("%d connections from this source are already authenticating", n)
	}
	if n := g.perNet[nw]; n >= lim.PendingPerPrefix {
		v := oldest(g.netSilent[nw])
		if v == nil {
			g.mu.Unlock()
			return nil, fmt.Sprintf("%d connections from %s are already authenticating", n, nw)
		}
		drop = append(drop, v)
		g.out(v)
	}
	if g.total >= lim.Pending {
		v := oldest(&g.silent)
		if v == nil {
			n := g.total
			g.mu.Unlock()
			return nil, fmt.Sprintf("%d connections are already authenticating", n)
		}
		drop = append(drop, v)
		g.out(v)
	}
	p = &pending{conn: conn, src: src, net: nw, since: time.Now()}
	p.silent = g.silent.PushBack(p)
	l := g.netSilent[nw]
	if l == nil {
		l = list.New()
		g.netSilent[nw] = l
	}
	p.inNet = l.PushBack(p)
	g.total++
	g.perSource[src]++
	g.perNet[nw]++
	g.evicted += len(drop)
	g.mu.Unlock()
	for _, v := range drop {
		v.conn.Close() // its handshake fails and returns at once
	}
	return p, ""
}

// oldest is the silent connection of l that has waited longest, or nil.
func oldest(l *list.List) *pending {
	if l == nil || l.Len() == 0 {
		return nil
	}
	return l.Front().Value.(*pending)
}

// quiet takes p off the silent lists (g.mu held).
func (g *gate) quiet(p *pending) {
	if p.silent == nil {
		return
	}
	g.silent.Remove(p.silent)
	p.silent = nil
	if l := g.netSilent[p.net]; l != nil {
		l.Remove(p.inNet)
		if l.Len() == 0 {
			delete(g.netSilent, p.net)
		}
	}
	p.inNet = nil
}

// out counts p out of the gate (g.mu held).
func (g *gate) out(p *pending) {
	if p.gone {
		return
	}
	p.gone = true
	g.quiet(p)
	g.total--
	if g.perSource[p.src]--; g.perSource[p.src] <= 0 {
		delete(g.perSource, p.src)
	}
	if g.perNet[p.net]--; g.perNet[p.net] <= 0 {
		delete(g.perNet, p.net)
	}
}

// spoke notes that p sent its preface: it is no longer dropped for room.
func (g *gate) spoke(p *pending) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.quiet(p)
}

// leave counts p out once its handshake is over, whichever way.
func (g *gate) leave(p *pending) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.out(p)
}

// evictions is how many silent connections were dropped to make room.
func (g *gate) evictions() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.evicted
}
