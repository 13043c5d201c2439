package server

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/sluicehq/sluice/fleet"
)

// Owner tunnel counting: how many tunnels each owner (token) has online
// across its sessions, against Limits.TunnelsPerOwner or the tokens file's
// max_tunnels. In a fleet the bound holds across the edges: each edge
// writes its own count per owner to the fleet's store, with
// compare-and-set against the sum over the current members.

// errTunnelLimit means the owner has its limit of tunnels open.
var errTunnelLimit = errors.New("owner's tunnel limit reached")

// reserveTunnel counts one more tunnel for ac's owner. It fails with
// errTunnelLimit when the owner's limit is reached (on this edge, or across
// the fleet), or when a fleet's store cannot count it.
func (s *Server) reserveTunnel(ac *agentConn) error {
	max := ac.currentRule().maxTunnels
	if max == 0 {
		max = s.limits().TunnelsPerOwner
	}
	s.ownerMu.Lock()
	if s.ownerTunnels[ac.owner] >= max {
		s.ownerMu.Unlock()
		return errTunnelLimit
	}
	s.ownerTunnels[ac.owner]++
	s.ownerMu.Unlock()
	if s.fleet == nil {
		return nil
	}
	err := s.fleet.publishCount(ac.owner, max)
	if err == nil {
		return nil
	}
	s.countTunnel(ac.owner, -1)
	if errors.Is(err, fleet.ErrOverLimit) {
		return errTunnelLimit
	}
	return fmt.Errorf("%w, so the owner's tunnels cannot be counted (the agent retries): %v", errStoreDown, err)
}

func (s *Server) countTunnel(o ownerID, delta int) {
	s.ownerMu.Lock()
	if s.ownerTunnels[o] += delta; s.ownerTunnels[o] <= 0 {
		delete(s.ownerTunnels, o)
	}
	s.ownerMu.Unlock()
	if s.fleet != nil && delta < 0 {
		if err := s.fleet.publishCount(o, 0); err != nil {
			s.log.Warn("fleet: could not lower an owner's tunnel count in the store; the next tunnel of the owner here corrects it", "err", err)
		}
	}
}

// ownerLocks serializes the writes of one owner's count, so a lower count
// read before a higher one is never written after it.
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

// publishCount writes this edge's current count of o's tunnels to the
// fleet, refused with fleet.ErrOverLimit when the fleet's sum would pass
// max (max 0: a lower count, always written).
func (f *edgeFleet) publishCount(o ownerID, max int) error {
	unlock := f.owners.lock(o)
	defer unlock()
	f.s.ownerMu.Lock()
	n := f.s.ownerTunnels[o]
	f.s.ownerMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), fleet.DefaultOpTimeout)
	defer cancel()
	if max == 0 {
		max = -1
	}
	_, err := f.store.SetCount(ctx, "tunnels:"+o.String(), n, max)
	return err
}
