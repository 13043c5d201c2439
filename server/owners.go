package server

// Owner tunnel counting: how many tunnels each owner (token) has online
// across its sessions, against Limits.TunnelsPerOwner or the tokens file's
// max_tunnels.

// reserveTunnel counts one more tunnel for ac's owner, or reports that the
// owner's limit is reached.
func (s *Server) reserveTunnel(ac *agentConn) bool {
	max := ac.currentRule().maxTunnels
	if max == 0 {
		max = s.limits().TunnelsPerOwner
	}
	s.ownerMu.Lock()
	defer s.ownerMu.Unlock()
	if s.ownerTunnels[ac.owner] >= max {
		return false
	}
	s.ownerTunnels[ac.owner]++
	return true
}

func (s *Server) countTunnel(o ownerID, delta int) {
	s.ownerMu.Lock()
	defer s.ownerMu.Unlock()
	if s.ownerTunnels[o] += delta; s.ownerTunnels[o] <= 0 {
		delete(s.ownerTunnels, o)
	}
}
