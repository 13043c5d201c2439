package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Limits bound what agents, authenticated or not, can make the edge hold.
// Zero fields take the defaults below; a tokens file entry may lower or raise
// TunnelsPerOwner for its owner.
type Limits struct {
	// Pending caps the agent connections that have not authenticated yet,
	// in all. Beyond it new connections are closed at once. Default 256.
	Pending int
	// PendingPerSource caps them per source IP address. Default 8.
	PendingPerSource int
	// TunnelsPerSession caps the tunnels one session registers. Default 64.
	TunnelsPerSession int
	// TunnelsPerOwner caps the tunnels one owner (token) has open across
	// all its sessions. Default 256.
	TunnelsPerOwner int
	// StreamsPerSession caps the streams open at once on one session (the
	// public connections in flight to one agent). Default 16384.
	StreamsPerSession int
	// StreamsPerOwner caps the streams open at once across all sessions of
	// one owner (token). Default 65536.
	StreamsPerOwner int
	// AuthFailureDelay is the delay before refusing a wrong token, doubled
	// for each further failure from the same source address within a
	// minute, up to 32 times. Default 250 ms.
	AuthFailureDelay time.Duration
	// WarnInterval is how often repeated warnings about one source are
	// summarised into one line with a count. Default 10 s.
	WarnInterval time.Duration
}

func (l *Limits) setDefaults() {
	if l.Pending <= 0 {
		l.Pending = 256
	}
	if l.PendingPerSource <= 0 {
		l.PendingPerSource = 8
	}
	if l.TunnelsPerSession <= 0 {
		l.TunnelsPerSession = 64
	}
	if l.TunnelsPerOwner <= 0 {
		l.TunnelsPerOwner = 256
	}
	if l.StreamsPerSession <= 0 {
		l.StreamsPerSession = 16384
	}
	if l.StreamsPerOwner <= 0 {
		l.StreamsPerOwner = 65536
	}
	if l.AuthFailureDelay <= 0 {
		l.AuthFailureDelay = 250 * time.Millisecond
	}
	if l.WarnInterval <= 0 {
		l.WarnInterval = 10 * time.Second
	}
}

// sourceIP is the address part of a remote address, the unit of per-source
// limits.
func sourceIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// gate counts connections that have not authenticated, in all and per
// source, so a flood of silent connections cannot hold the edge's
// descriptors and memory.
type gate struct {
	mu        sync.Mutex
	total     int
	perSource map[string]int
}

func (g *gate) enter(src string, lim Limits) (ok bool, reason string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.total >= lim.Pending {
		return false, fmt.Sprintf("%d connections are already authenticating", g.total)
	}
	if g.perSource[src] >= lim.PendingPerSource {
		return false, fmt.Sprintf("%d connections from this address are already authenticating", g.perSource[src])
	}
	if g.perSource == nil {
		g.perSource = map[string]int{}
	}
	g.total++
	g.perSource[src]++
	return true, ""
}

func (g *gate) leave(src string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total--
	if g.perSource[src]--; g.perSource[src] <= 0 {
		delete(g.perSource, src)
	}
}

// authFailures slows wrong tokens per source address.
type authFailures struct {
	mu sync.Mutex
	m  map[string]failRecord
}

type failRecord struct {
	n    int
	last time.Time
}

// failMemory is how long a source's failures count against it.
const failMemory = time.Minute

// fail records a failure from src and returns how long to wait before
// answering it.
func (a *authFailures) fail(src string, base time.Duration) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if a.m == nil {
		a.m = map[string]failRecord{}
	}
	if len(a.m) > 10000 {
		for k, r := range a.m {
			if now.Sub(r.last) > failMemory {
				delete(a.m, k)
			}
		}
	}
	r := a.m[src]
	if now.Sub(r.last) > failMemory {
		r.n = 0
	}
	r.n++
	r.last = now
	a.m[src] = r
	return base << min(r.n-1, 5)
}

// summary logs a warning about a source once, then counts its repeats and
// logs one line per source and interval with the count.
type summary struct {
	log    *slog.Logger
	record func(src, msg string) // also told of every warning (the console's refusals); may be nil

	mu   sync.Mutex
	seen map[summaryKey]*summaryEntry
}

type summaryKey struct{ msg, src string }

type summaryEntry struct {
	repeats int
	args    []any
}

func (s *summary) warn(src, msg string, args ...any) {
	if s.record != nil {
		s.record(src, msg)
	}
	s.mu.Lock()
	if s.seen == nil {
		s.seen = map[summaryKey]*summaryEntry{}
	}
	k := summaryKey{msg, src}
	if e, ok := s.seen[k]; ok {
		e.repeats++
		e.args = args
		s.mu.Unlock()
		return
	}
	s.seen[k] = &summaryEntry{}
	s.mu.Unlock()
	s.log.Warn(msg, append([]any{"source", src}, args...)...)
}

// flush logs the repeats counted since the last flush and forgets the
// sources, so the next warning about each is logged at once again.
func (s *summary) flush(interval time.Duration) {
	s.mu.Lock()
	seen := s.seen
	s.seen = nil
	s.mu.Unlock()
	keys := make([]summaryKey, 0, len(seen))
	for k, e := range seen {
		if e.repeats > 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].src < keys[j].src || keys[i].src == keys[j].src && keys[i].msg < keys[j].msg
	})
	for _, k := range keys {
		e := seen[k]
		s.log.Warn(k.msg+" (repeated)", append([]any{"source", k.src, "repeats", e.repeats, "interval", interval}, e.args...)...)
	}
}

func (s *summary) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.flush(interval)
			return
		case <-t.C:
			s.flush(interval)
		}
	}
}

// errStreamLimit refuses a public connection when its tunnel's owner has as
// many streams open as it may.
var errStreamLimit = errors.New("the tunnel's owner has as many connections open as its limit allows")

// acquireStream counts one more stream for ac's owner; release uncounts it
// and may be called more than once.
func (s *Server) acquireStream(ac *agentConn) (release func(), err error) {
	max := int64(ac.currentRule().maxStreams)
	if max == 0 {
		max = int64(s.limits().StreamsPerOwner)
	}
	v, _ := s.ownerStreams.LoadOrStore(ac.owner, new(atomic.Int64))
	n := v.(*atomic.Int64)
	if n.Add(1) > max {
		n.Add(-1)
		s.warn.warn(ac.currentRule().ownerName, "public connection refused: the owner's stream limit is reached", "limit", max)
		return nil, errStreamLimit
	}
	var once sync.Once
	return func() { once.Do(func() { n.Add(-1) }) }, nil
}

// releasingConn releases a stream's count when the HTTP transport closes it.
type releasingConn struct {
	net.Conn
	release func()
}

func (c *releasingConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
