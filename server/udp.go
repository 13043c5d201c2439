package server

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/control"
)

// UDP tunnels: a public port per endpoint, claimed as a lease like a TCP
// port (see ports.go) and bound here; the datagram path behind it is in
// udp_flow.go.

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
	s.reg.udp.Range(func(_, v any) bool {
		u := v.(*endpoint).udp
		u.mu.Lock()
		st.Flows += len(u.flows)
		u.mu.Unlock()
		st.QueuedBytes += u.queued.Load()
		st.Dropped += u.drops.total()
		return true
	})
	return st
}

// udpPorts says how UDP ports are bound and served: a socket per port,
// whose flows go to the endpoint's members and which outlives them.
func (s *Server) udpPorts() portKind {
	return portKind{
		kind: control.KindUDP, label: "UDP", lo: s.cfg.UDPPortMin, hi: s.cfg.UDPPortMax, key: udpKey,
		bind: func(port int) (io.Closer, int, error) {
			if s.fleet != nil && port != 0 {
				// This edge serves the port now, not another edge for it.
				s.fleet.unmirror(udpKey(port))
			}
			pc, err := listenUDP(net.JoinHostPort(s.cfg.TCPHost, strconv.Itoa(port)))
			if err != nil {
				return nil, 0, err
			}
			// A larger socket buffer absorbs bursts while the read loop
			// hands datagrams on; the kernel caps it at net.core.rmem_max.
			pc.SetReadBuffer(udpSocketBuffer)
			return pc, pc.LocalAddr().(*net.UDPAddr).Port, nil
		},
		serve: func(ep *endpoint, sock io.Closer) {
			ep.udp = s.serveUDP(ep.port, sock.(*net.UDPConn), s.pickMember(ep))
		},
	}
}

// serveUDP serves the public socket pc of port until it closes, sending
// each new flow where pick says.
func (s *Server) serveUDP(port int, pc *net.UDPConn, pick func(netip.AddrPort) (udpTarget, udpDropReason)) *udpIngress {
	u := &udpIngress{s: s, port: port, pc: pc, pick: pick, cfg: &s.cfg, flows: make(map[netip.AddrPort]*udpFlow), stop: make(chan struct{})}
	u.ctx, u.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		u.serve()
	}()
	return u
}

func listenUDP(addr string) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	return net.ListenUDP("udp", ua)
}
