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
	var c *ownerCount
	if s.fleet != nil {
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
