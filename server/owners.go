package server

import (
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/fleet"
)

// Owner tunnel counting: how many tunnels each owner (token) has online
// across its sessions, against Limits.TunnelsPerOwner or the tokens file's
// max_tunnels. In a fleet the bound holds across the edges (fleet_owners.go).

// errTunnelLimit means the owner has its limit of tunnels open.
var errTunnelLimit = errors.New("owner's tunnel limit reached")

// reserveTunnel counts one more tunnel for ac's owner. It fails with
// errTunnelLimit when the owner's limit is reached (on this edge, or across
// the fleet), or when a fleet's store cannot count it. A further session's
// share of a tunnel (see tunnel.further) counts on this edge only.
func (s *Server) reserveTunnel(ac *agentConn, further bool) error {
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
	if further {
		s.ownerFurther[ac.owner]++
	}
	var c *ownerCount
	if s.fleet != nil && !further {
		c = s.fleet.counted(ac.owner)
	}
	s.ownerMu.Unlock()
	if c == nil {
		return nil
	}
	err := s.fleet.reserve(ac.owner, c, max)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fleet.ErrOverLimit):
		return errTunnelLimit
	}
	return &storeError{fmt.Errorf("the fleet's store does not answer, so the owner's tunnels cannot be counted: %w", err)}
}

// uncount takes a tunnel that closed (or was refused after its
// reservation) off its owner's count.
func (s *Server) uncount(t *tunnel) {
	if !t.further {
		s.countTunnel(t.ac.owner, -1)
		return
	}
	s.ownerMu.Lock()
	defer s.ownerMu.Unlock()
	s.addTunnels(t.ac.owner, -1)
	if s.ownerFurther[t.ac.owner]--; s.ownerFurther[t.ac.owner] <= 0 {
		delete(s.ownerFurther, t.ac.owner)
	}
}

func (s *Server) countTunnel(o ownerID, delta int) {
	s.ownerMu.Lock()
	s.addTunnels(o, delta)
	var c *ownerCount
	if s.fleet != nil && delta < 0 {
		c = s.fleet.lowered(o)
	}
	s.ownerMu.Unlock()
	if c != nil {
		s.fleet.flushLower(o, c)
	}
}

// addTunnels changes o's count (s.ownerMu held).
func (s *Server) addTunnels(o ownerID, delta int) {
	if s.ownerTunnels[o] += delta; s.ownerTunnels[o] <= 0 {
		delete(s.ownerTunnels, o)
	}
}
