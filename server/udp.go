package server

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/control"
)

// UDP tunnels: a public port per tunnel, claimed and bound here; the
// datagram path behind it is in udp_flow.go.

// UDP defaults.
const (
	DefaultUDPIdleTimeout   = time.Minute
	DefaultUDPMaxFlows      = 1024
	DefaultUDPFlowQueue     = 64
	DefaultUDPQueueBytes    = 4 << 20
	udpStreamOpenTimeout    = 10 * time.Second
	udpSocketBuffer         = 1 << 20
	maxUDPDatagramOnTheWire = control.MaxDatagram
)

// UDPStats is a snapshot of the edge's UDP tunnels, summed over tunnels.
type UDPStats struct {
	Flows       int    // flows open
	QueuedBytes int64  // datagram bytes waiting for their stream
	Dropped     uint64 // datagrams dropped: flow limit, full queue or byte budget
}

// UDPStats returns a snapshot of the edge's UDP tunnels.
func (s *Server) UDPStats() UDPStats {
	var st UDPStats
	s.sessions.Range(func(k, _ any) bool {
		ac := k.(*agentConn)
		ac.mu.Lock()
		for _, t := range ac.tunnels {
			if u := t.udp; u != nil {
				u.mu.Lock()
				st.Flows += len(u.flows)
				u.mu.Unlock()
				st.QueuedBytes += u.queued.Load()
				st.Dropped += u.dropped.Load()
			}
		}
		ac.mu.Unlock()
		return true
	})
	return st
}

func (ac *agentConn) registerUDP(t *tunnel, r control.Register) *control.Error {
	s := ac.s
	lo, hi := s.cfg.UDPPortMin, s.cfg.UDPPortMax
	ranged := lo != 0 || hi != 0
	if r.RemotePort < 0 || r.RemotePort > 65535 {
		return regError(r.Ref, control.CodeBadRequest, "remote port %d is out of range 1-65535", r.RemotePort)
	}
	if r.RemotePort != 0 && ranged && (r.RemotePort < lo || r.RemotePort > hi) {
		return regError(r.Ref, control.CodePortTaken, "remote port %d is outside this edge's UDP port range %d-%d", r.RemotePort, lo, hi)
	}
	if t.name == "" {
		t.name = "udp"
	}
	var lastErr error
	for attempt := 0; attempt < 50; attempt++ {
		port := r.RemotePort
		if port == 0 && ranged {
			port = lo + randInt(hi-lo+1)
		}
		lastErr = ac.bindUDP(t, port)
		if lastErr == nil || r.RemotePort != 0 {
			break
		}
	}
	if lastErr != nil {
		return regError(r.Ref, control.CodePortTaken, "%v", lastErr)
	}
	t.url = "udp://" + net.JoinHostPort(s.cfg.PublicHost, strconv.Itoa(t.port))
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t.udp.serve()
	}()
	return nil
}

// bindUDP claims port (0: any) in the registry and binds it.
func (ac *agentConn) bindUDP(t *tunnel, port int) error {
	s := ac.s
	if port != 0 {
		old, err := s.reg.claimUDPPort(port, t)
		if err != nil {
			return fmt.Errorf("UDP port %d is in use by another agent", port)
		}
		if old != nil {
			// Our own token reconnected before its old session died.
			old.(*tunnel).udp.close()
		}
	}
	pc, err := listenUDP(net.JoinHostPort(s.cfg.TCPHost, strconv.Itoa(port)))
	if err != nil {
		if port != 0 {
			s.reg.releaseUDPPort(port, t)
		}
		return fmt.Errorf("edge cannot listen on UDP port %d: %v", port, err)
	}
	if port == 0 {
		port = pc.LocalAddr().(*net.UDPAddr).Port
		if _, err := s.reg.claimUDPPort(port, t); err != nil {
			pc.Close()
			return fmt.Errorf("ephemeral UDP port %d is reserved for another agent", port)
		}
	}
	// A larger socket buffer absorbs bursts while the read loop hands
	// datagrams on; the kernel caps it at net.core.rmem_max.
	pc.SetReadBuffer(udpSocketBuffer)
	t.port = port
	t.udp = &udpTunnel{t: t, pc: pc, cfg: &s.cfg, flows: make(map[netip.AddrPort]*udpFlow), stop: make(chan struct{})}
	t.udp.ctx, t.udp.cancel = context.WithCancel(context.Background())
	return nil
}

func listenUDP(addr string) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	return net.ListenUDP("udp", ua)
}
