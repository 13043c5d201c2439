package server

import (
	"encoding/hex"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/server/console"
)

// consoleEdge is the edge as its operator console sees it (a
// console.Backend), and what the console shows that the edge keeps nowhere
// else: refusals by reason, and how often agents came back for their
// addresses. It exists only when the admin address is set.
type consoleEdge struct {
	s       *Server
	id      string // host name and agent port: unique across a fleet
	started time.Time

	mu       sync.Mutex
	changed  chan struct{} // closed at the next change
	refusals map[refusalKey]*refusalStat
	reclaims map[string]int // lease key → times an agent came back for it
	certs    map[string]cachedCert
}

type refusalKey struct{ kind, reason string }

type refusalStat struct {
	count   int64
	sources map[string]struct{}
	lastSrc string
	last    time.Time
}

// Bounds on what the refusal summary remembers, so a flood of distinct
// sources or reasons cannot grow it without end.
const (
	maxRefusalReasons = 256
	maxRefusalSources = 1024
	maxReclaimKeys    = 10000
)

func newConsoleEdge(s *Server) *consoleEdge {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "edge"
	}
	_, port, _ := net.SplitHostPort(s.Addr().String())
	return &consoleEdge{
		s: s, id: net.JoinHostPort(host, port), started: time.Now(), changed: make(chan struct{}),
		refusals: map[refusalKey]*refusalStat{}, reclaims: map[string]int{}, certs: map[string]cachedCert{},
	}
}

// ConsoleBackend returns the edge as a console.Backend, or nil when the
// edge has no admin address. A fleet's console takes one per edge.
func (s *Server) ConsoleBackend() console.Backend {
	if s.con == nil {
		return nil
	}
	return s.con
}

func (c *consoleEdge) notify() {
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *consoleEdge) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// consoleChanged tells the console that sessions or tunnels changed.
func (s *Server) consoleChanged() {
	if s.con != nil {
		s.con.notify()
	}
}

// consoleOnline tells the console a tunnel came online, reclaimed when the
// agent came back for its address with its lease.
func (s *Server) consoleOnline(t *tunnel, reclaimed bool) {
	c := s.con
	if c == nil {
		return
	}
	if reclaimed && t.ep != nil {
		c.mu.Lock()
		if _, ok := c.reclaims[t.ep.key]; ok || len(c.reclaims) < maxReclaimKeys {
			c.reclaims[t.ep.key]++
		}
		c.mu.Unlock()
	}
	c.notify()
}

// refusalKind sorts the edge's warnings about refused clients.
func refusalKind(msg string) string {
	switch {
	case strings.Contains(msg, "authentication failed"):
		return console.RefusedAuth
	case strings.Contains(msg, "limit"), strings.Contains(msg, "refused before its handshake"):
		return console.RefusedLimit
	}
	return console.RefusedHandshake
}

// registrationKind sorts a refused tunnel registration by its error code.
func registrationKind(code string) string {
	switch code {
	case control.CodeForbidden:
		return console.RefusedPolicy
	case control.CodeLimit:
		return console.RefusedLimit
	case control.CodeNameTaken, control.CodePortTaken:
		return console.RefusedClaim
	}
	return console.RefusedHandshake
}

// registrationReason says in words why a registration was refused.
func registrationReason(code string) string {
	switch code {
	case control.CodeForbidden:
		return "tunnel refused: the token's rules do not allow the name or port"
	case control.CodeLimit:
		return "tunnel refused: a tunnel limit is reached"
	case control.CodeNameTaken:
		return "tunnel refused: the name is another owner's"
	case control.CodePortTaken:
		return "tunnel refused: the port is taken or outside the range"
	}
	return "tunnel refused: " + code
}

// consoleRefused counts one refusal for the console's summary.
func (s *Server) consoleRefused(kind, reason, src string) {
	c := s.con
	if c == nil {
		return
	}
	now := time.Now()
	k := refusalKey{kind, reason}
	c.mu.Lock()
	st := c.refusals[k]
	if st == nil {
		if len(c.refusals) >= maxRefusalReasons {
			c.mu.Unlock()
			return
		}
		st = &refusalStat{sources: map[string]struct{}{}}
		c.refusals[k] = st
	}
	st.count++
	st.last, st.lastSrc = now, src
	if len(st.sources) < maxRefusalSources {
		st.sources[src] = struct{}{}
	}
	c.mu.Unlock()
	c.notify()
}

// tokenID names a token in the console without revealing it: the start of
// its SHA-256.
func tokenID(h [32]byte) string { return "sha256:" + hex.EncodeToString(h[:6]) }

// Snapshot implements console.Backend.
func (c *consoleEdge) Snapshot() console.Snapshot {
	s := c.s
	now := time.Now()
	sn := console.Snapshot{
		Edge: console.Edge{ID: c.id, Version: Software, Started: c.started, Agents: s.Addr().String(),
			HTTP: addrString(s.HTTPAddr()), HTTPS: addrString(s.HTTPSAddr())},
		Time: now, Sessions: []console.Session{}, Tunnels: []console.Tunnel{}, Owners: []console.Owner{},
		Leases: []console.Lease{}, Refusals: []console.Refusal{},
	}
	c.mu.Lock()
	reclaims := make(map[string]int, len(c.reclaims))
	for k, n := range c.reclaims {
		reclaims[k] = n
	}
	c.mu.Unlock()
	perOwner := map[ownerID]int{}
	perToken := map[[32]byte]int{}
	s.sessions.Range(func(k, _ any) bool {
		ac := k.(*agentConn)
		r := ac.currentRule()
		perOwner[ac.owner]++
		perToken[r.hash]++
		ac.mu.Lock()
		tunnels := append([]*tunnel(nil), ac.tunnels...)
		ac.mu.Unlock()
		ss := console.Session{
			ID: ac.id, Owner: r.ownerName, TokenID: tokenID(r.hash), RemoteAddr: ac.remote, Software: ac.software,
			Since: ac.since, RTT: ac.sess.RTT(), Streams: ac.sess.NumStreams(), Tunnels: len(tunnels),
		}
		for _, t := range tunnels {
			ct := console.Tunnel{
				ID: strconv.FormatUint(uint64(t.id), 10), URL: t.url, Kind: string(t.kind), Name: t.name,
				Owner: r.ownerName, Session: ac.id, AgentAddr: ac.remote, Since: ac.since, Members: 1,
				Streams: t.streams.Load(), BytesIn: t.meter.AToB.Load(), BytesOut: t.meter.BToA.Load(),
			}
			for i := range ct.Requests {
				ct.Requests[i] = t.requests[i].Load()
			}
			if ep := t.ep; ep != nil {
				ct.Members = max(1, ep.size())
				ep.mu.Lock()
				ct.Since = ep.since
				ep.mu.Unlock()
				ss.Reconnects = max(ss.Reconnects, reclaims[ep.key])
			}
			sn.Tunnels = append(sn.Tunnels, ct)
		}
		sn.Sessions = append(sn.Sessions, ss)
		return true
	})
	sn.Owners = c.owners(perOwner, perToken)
	sn.Leases = c.leases(now)
	sn.Refusals = c.refusalList()
	sn.Certificates = c.certificates()
	return sn
}

func (c *consoleEdge) owners(perOwner map[ownerID]int, perToken map[[32]byte]int) []console.Owner {
	s := c.s
	lim := s.limits()
	s.ownerMu.Lock()
	tunnels := make(map[ownerID]int, len(s.ownerTunnels))
	for o, n := range s.ownerTunnels {
		tunnels[o] = n
	}
	s.ownerMu.Unlock()
	revocable := s.cfg.TokensFile != ""
	leases := map[ownerID]int{}
	s.reg.mu.Lock()
	for _, l := range s.reg.leases {
		leases[parseOwner(l.rec.Owner)]++
	}
	s.reg.mu.Unlock()
	byOwner := map[ownerID]*console.Owner{}
	var order []ownerID
	for _, r := range s.auth.Load().rules {
		o := byOwner[r.owner]
		if o == nil {
			o = &console.Owner{Name: r.ownerName, Sessions: perOwner[r.owner], Tunnels: tunnels[r.owner],
				MaxTunnels: r.maxTunnels, MaxStreams: r.maxStreams, Names: strings.Join(r.names, ", "), Ports: r.portList()}
			if o.MaxTunnels == 0 {
				o.MaxTunnels = lim.TunnelsPerOwner
			}
			if o.MaxStreams == 0 {
				o.MaxStreams = lim.StreamsPerOwner
			}
			o.MaxLeases, o.Leases = r.maxLeases, leases[r.owner]
			if o.MaxLeases == 0 {
				o.MaxLeases = lim.LeasesPerOwner
			}
			if v, ok := s.ownerStreams.Load(r.owner); ok {
				o.Streams = v.(*atomic.Int64).Load()
			}
			byOwner[r.owner] = o
			order = append(order, r.owner)
		}
		tk := console.Token{ID: tokenID(r.hash), Source: "configuration", Sessions: perToken[r.hash]}
		if r.index > 0 {
			tk.Source = "tokens file entry " + strconv.Itoa(r.index)
			tk.Revocable = revocable
		}
		o.Tokens = append(o.Tokens, tk)
	}
	out := make([]console.Owner, 0, len(order))
	for _, o := range order {
		out = append(out, *byOwner[o])
	}
	return out
}

func (c *consoleEdge) leases(now time.Time) []console.Lease {
	r := c.s.reg
	out := []console.Lease{}
	r.mu.Lock()
	for k, l := range r.leases {
		if l.ep == nil && now.Before(l.until) {
			out = append(out, console.Lease{Key: k, Label: keyLabel(k), Owner: l.rec.OwnerName, Until: l.until})
		}
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func (c *consoleEdge) refusalList() []console.Refusal {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]console.Refusal, 0, len(c.refusals))
	for k, st := range c.refusals {
		out = append(out, console.Refusal{Kind: k.kind, Reason: k.reason, Count: st.count, Sources: len(st.sources), LastSource: st.lastSrc, Last: st.last})
	}
	return out
}
