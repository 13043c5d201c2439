package server

import (
	"context"
	"slices"
	"sync"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/fleet"
)

// An owner's tunnels across the fleet: each edge writes its own count of
// the owner's tunnels into one store record, with compare-and-set against
// the sum over the current members (fleet.Store.SetCount), so two edges
// registering at once cannot both take the owner's last place.
//
// One write at a time per owner and edge. A write covers every reservation
// counted before it read the count, so reservations queued behind a write
// usually find themselves covered and cost no store operation. A lower
// count (a tunnel closed) is written without a check, but only while no
// reservation is between its count and its answer: otherwise the count
// would carry an unchecked reservation past the bound. The last such
// reservation writes it when it ends.

// ownerCount is one owner's counting state on this edge; its fields are
// guarded by Server.ownerMu.
type ownerCount struct {
	gen       uint64 // reservations counted so far
	published uint64 // reservations a checked write that passed covered
	pending   int    // reservations between their count and their answer
	lowered   uint64 // closed tunnels counted so far
	written   uint64 // closed tunnels a write covered
}

// counted counts one more reservation of o, already added to the edge's
// count (s.ownerMu held).
func (f *edgeFleet) counted(o ownerID) *ownerCount {
	c := f.countOf(o)
	c.gen++
	c.pending++
	return c
}

// lowered counts a closed tunnel of o, already taken off the edge's count
// (s.ownerMu held).
func (f *edgeFleet) lowered(o ownerID) *ownerCount {
	c := f.countOf(o)
	c.lowered++
	return c
}

func (f *edgeFleet) countOf(o ownerID) *ownerCount {
	c := f.counts[o]
	if c == nil {
		c = &ownerCount{}
		f.counts[o] = c
	}
	return c
}

// reserve makes sure the fleet's record covers the reservation c.gen
// counted for o, checking it against max; on failure it takes the
// reservation back.
func (f *edgeFleet) reserve(o ownerID, c *ownerCount, max int) error {
	s := f.s
	s.ownerMu.Lock()
	mine := c.gen
	s.ownerMu.Unlock()
	unlock := f.owners.lock(o)
	defer unlock()
	s.ownerMu.Lock()
	covered := c.published >= mine
	gen, lowered, n := c.gen, c.lowered, s.counts(o)
	s.ownerMu.Unlock()
	var err error
	if !covered {
		err = f.setCount(o, n, max)
	}
	s.ownerMu.Lock()
	if err == nil && !covered {
		c.published = max64(c.published, gen)
		c.written = max64(c.written, lowered)
	}
	c.pending--
	if err != nil {
		s.addTunnels(o, -1)
		c.lowered++
	}
	flush, n, lowered := c.pending == 0 && c.lowered > c.written, s.counts(o), c.lowered
	s.ownerMu.Unlock()
	if flush {
		f.writeLower(o, c, n, lowered)
	}
	return err
}

// flushLower writes o's lower count when no reservation is in flight.
func (f *edgeFleet) flushLower(o ownerID, c *ownerCount) {
	unlock := f.owners.lock(o)
	defer unlock()
	s := f.s
	s.ownerMu.Lock()
	flush, n, lowered := c.pending == 0 && c.lowered > c.written, s.counts(o), c.lowered
	s.ownerMu.Unlock()
	if flush {
		f.writeLower(o, c, n, lowered)
	}
}

// writeLower writes n, o's count with every reservation in it checked, as
// of the lowered-th closed tunnel (o's write lock held).
func (f *edgeFleet) writeLower(o ownerID, c *ownerCount, n int, lowered uint64) {
	if err := f.setCount(o, n, -1); err != nil {
		f.s.log.Warn("fleet: could not lower an owner's tunnel count in the store; the owner's next tunnel or closed tunnel here writes it", "err", err)
		return
	}
	s := f.s
	s.ownerMu.Lock()
	defer s.ownerMu.Unlock()
	c.written = max64(c.written, lowered)
	if c.pending == 0 && c.written == c.lowered && s.counts(o) == 0 && f.counts[o] == c {
		delete(f.counts, o) // a new state starts over, checking every write
	}
}

func (f *edgeFleet) setCount(o ownerID, n, max int) error {
	ctx, cancel := context.WithTimeout(context.Background(), fleet.DefaultOpTimeout)
	defer cancel()
	_, err := f.store.SetCount(ctx, "tunnels:"+o.String(), n, max)
	return err
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// ownerLocks serializes the writes of one owner's count.
type ownerLocks struct {
	mu sync.Mutex
	m  map[ownerID]*ownerLock
}

type ownerLock struct {
	sync.Mutex
	users int
}

func (o *ownerLocks) lock(id ownerID) func() {
	o.mu.Lock()
	if o.m == nil {
		o.m = map[ownerID]*ownerLock{}
	}
	l := o.m[id]
	if l == nil {
		l = &ownerLock{}
		o.m[id] = l
	}
	l.users++
	o.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		o.mu.Lock()
		if l.users--; l.users == 0 {
			delete(o.m, id)
		}
		o.mu.Unlock()
	}
}

// counts is the count of o's tunnels this edge writes to the fleet: those
// the fleet counts here (s.ownerMu held).
func (s *Server) counts(o ownerID) int { return s.ownerTunnels[o] - s.ownerFurther[o] }

// furtherSession reports whether r registers, on one more edge, a tunnel
// another edge of the fleet serves for the same agent (it presents the
// lease, for the name or port that edge holds): the fleet counts that
// tunnel once, where it was first opened.
func (ac *agentConn) furtherSession(r control.Register) bool {
	s := ac.s
	if s.fleet == nil || r.Lease == "" {
		return false
	}
	var key string
	switch {
	case r.Kind == control.KindHTTP && r.Hostname != "":
		key = hostKey(r.Hostname)
	case r.Kind == control.KindHTTP && r.Name != "":
		key = hostKey(r.Name + "." + s.cfg.Domain)
	case r.Kind == control.KindTCP && r.RemotePort != 0:
		key = portKey(r.RemotePort)
	case r.Kind == control.KindUDP && r.RemotePort != 0:
		key = udpKey(r.RemotePort)
	default:
		return false
	}
	l, ok := s.fleet.store.Lookup(key)
	self := s.fleet.store.ID()
	if !ok || !slices.ContainsFunc(l.Holders, func(id string) bool { return id != self }) {
		return false
	}
	return s.reg.leaseValidShared(key, r.Lease, ac.owner)
}
