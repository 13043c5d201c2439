package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/proxyproto"
	"github.com/sluicehq/sluice/mux"
)

// UDP tunnels: the edge binds a public UDP port per tunnel and keeps one
// flow per public source address. A flow is one mux stream to the agent that
// carries length-prefixed datagrams both ways (control.AppendDatagram); it
// ends after UDPIdleTimeout without a datagram in either direction. Each
// flow has a bounded queue in front of its stream, and all flows of a
// tunnel share a byte budget: when the stream is backed up (the agent or the
// local service is slower than the public senders), new datagrams are
// dropped, as a congested router would, instead of growing memory.

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

// validateL4 checks the UDP and PROXY protocol fields.
func (c *Config) validateL4() error {
	if c.UDPPortMin < 0 || c.UDPPortMax > 65535 || c.UDPPortMin > c.UDPPortMax || (c.UDPPortMin == 0) != (c.UDPPortMax == 0) {
		return configErr("UDPPortMin", "UDP port range %d-%d is invalid: give MIN-MAX within 1-65535, or both zero for any port", c.UDPPortMin, c.UDPPortMax)
	}
	if c.UDPIdleTimeout < 0 {
		return configErr("UDPIdleTimeout", "%v is negative: give a duration, or 0 for one minute", c.UDPIdleTimeout)
	}
	if c.UDPMaxFlows < 0 || c.UDPFlowQueue < 0 || c.UDPQueueBytes < 0 {
		return configErr("UDPMaxFlows", "UDP flow limits must not be negative (0 means the default)")
	}
	for _, p := range c.AcceptProxyProtocol {
		if !p.IsValid() {
			return configErr("AcceptProxyProtocol", "an entry is not a valid prefix: give CIDRs such as 10.0.0.0/8")
		}
	}
	return nil
}

// setL4Defaults fills the UDP and PROXY protocol fields left zero.
func (c *Config) setL4Defaults() {
	if c.UDPIdleTimeout == 0 {
		c.UDPIdleTimeout = DefaultUDPIdleTimeout
	}
	if c.UDPMaxFlows == 0 {
		c.UDPMaxFlows = DefaultUDPMaxFlows
	}
	if c.UDPFlowQueue == 0 {
		c.UDPFlowQueue = DefaultUDPFlowQueue
	}
	if c.UDPQueueBytes == 0 {
		c.UDPQueueBytes = DefaultUDPQueueBytes
	}
	if c.ProxyHeaderTimeout <= 0 {
		c.ProxyHeaderTimeout = proxyproto.DefaultHeaderTimeout
	}
}

// udpPort keys UDP ports in the registry apart from TCP ports: the two are
// separate namespaces on a host.
type udpPort int

// ClaimUDPPort maps a UDP port to rt, with the same rules as ClaimHost.
func (r *Registry) ClaimUDPPort(port int, rt Route) (replaced Route, err error) {
	return r.claimRoute(&r.ports, udpPort(port), fmt.Sprintf("u:%d", port), rt, ErrPortTaken)
}

// ReleaseUDPPort unmaps a UDP port if it still maps to rt, and reserves it
// for rt's owner for the grace period.
func (r *Registry) ReleaseUDPPort(port int, rt Route) {
	r.releaseRoute(&r.ports, udpPort(port), fmt.Sprintf("u:%d", port), rt)
}

// udpTunnel is the public side of one UDP tunnel.
type udpTunnel struct {
	t   *tunnel
	pc  *net.UDPConn
	cfg *Config

	mu     sync.Mutex
	flows  map[netip.AddrPort]*udpFlow
	closed bool
	stop   chan struct{}   // closed with the tunnel
	ctx    context.Context // ends with the tunnel, so flows opening a stream give up
	cancel context.CancelFunc

	queued  atomic.Int64
	dropped atomic.Uint64
	wg      sync.WaitGroup
}

// udpFlow is one public source address and its stream.
type udpFlow struct {
	u    *udpTunnel
	src  netip.AddrPort
	q    chan []byte // each a datagram with its length prefix
	last atomic.Int64
	st   atomic.Pointer[mux.Stream]
	done chan struct{}
	once sync.Once
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
		old, err := s.reg.ClaimUDPPort(port, t)
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
			s.reg.ReleaseUDPPort(port, t)
		}
		return fmt.Errorf("edge cannot listen on UDP port %d: %v", port, err)
	}
	if port == 0 {
		port = pc.LocalAddr().(*net.UDPAddr).Port
		if _, err := s.reg.ClaimUDPPort(port, t); err != nil {
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

// serve reads public datagrams until the socket closes, and expires idle
// flows.
func (u *udpTunnel) serve() {
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		u.expire()
	}()
	buf := make([]byte, maxUDPDatagramOnTheWire)
	failures := 0
	for {
		n, src, err := u.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				break
			}
			// An ICMP error for one peer can surface here; it does not end
			// the socket. A socket that only fails is broken, though, and
			// spinning on it would burn a core.
			if failures++; failures > 100 {
				u.t.ac.log.Warn("UDP tunnel socket keeps failing; closing the tunnel's port", "port", u.t.port, "err", err)
				break
			}
			continue
		}
		failures = 0
		u.deliver(netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), buf[:n])
	}
	u.close()
	u.wg.Wait()
}

// deliver queues one public datagram on its source's flow, opening the flow
// if it is new, or drops it when a bound is reached.
func (u *udpTunnel) deliver(src netip.AddrPort, p []byte) {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return
	}
	f := u.flows[src]
	if f == nil {
		if len(u.flows) >= u.cfg.UDPMaxFlows {
			u.mu.Unlock()
			u.dropped.Add(1)
			return
		}
		f = &udpFlow{u: u, src: src, q: make(chan []byte, u.cfg.UDPFlowQueue), done: make(chan struct{})}
		f.touch()
		u.flows[src] = f
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			f.run()
		}()
	}
	// Queued under the lock: finish removes the flow under it before it
	// drains the queue, so no datagram lands in a queue nobody drains (its
	// bytes would hold the budget for good).
	defer u.mu.Unlock()
	size := int64(len(p) + control.DatagramOverhead)
	if u.queued.Add(size) > u.cfg.UDPQueueBytes {
		u.queued.Add(-size)
		u.dropped.Add(1)
		return
	}
	d, _ := control.AppendDatagram(make([]byte, 0, size), p)
	select {
	case f.q <- d:
	default:
		u.queued.Add(-size)
		u.dropped.Add(1)
	}
}

func (f *udpFlow) touch() { f.last.Store(time.Now().UnixNano()) }

// run opens the flow's stream and writes its queued datagrams to it, while
// another goroutine sends the agent's replies back to the source.
func (f *udpFlow) run() {
	u := f.u
	defer f.finish()
	ctx, cancel := context.WithTimeout(u.ctx, udpStreamOpenTimeout)
	st, release, err := u.t.openFor(ctx, f.src.String(), u.pc.LocalAddr().String(), nil)
	cancel()
	if err != nil {
		u.t.ac.log.Debug("UDP flow dropped: opening a stream to the agent failed", "port", u.t.port, "from", f.src, "err", err)
		return
	}
	defer release()
	f.st.Store(st)
	defer st.Close()
	select {
	case <-f.done:
		return // ended while the stream was opening
	default:
	}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		f.replies(st)
	}()
	for {
		select {
		case d := <-f.q:
			u.queued.Add(-int64(len(d)))
			f.touch()
			if _, err := st.Write(d); err != nil {
				return
			}
			u.t.meter.AToB.Add(int64(len(d) - 2)) // the payload, for metrics and the admin view
		case <-f.done:
			return
		}
	}
}

// replies writes each datagram the agent sends on st to the flow's source.
func (f *udpFlow) replies(st *mux.Stream) {
	defer f.end()
	buf := make([]byte, 0, 2048)
	for {
		n, err := control.ReadDatagramLen(st)
		if err != nil {
			return
		}
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		p := buf[:n]
		if _, err := io.ReadFull(st, p); err != nil {
			return
		}
		f.touch()
		f.u.pc.WriteToUDPAddrPort(p, f.src)
		f.u.t.meter.BToA.Add(int64(n))
		if cap(buf) > 2048 {
			// A rare large reply does not pin 64 KiB per idle flow.
			buf = make([]byte, 0, 2048)
		}
	}
}

// end stops the flow. Closing the stream here, not only in run, unblocks a
// Write that waits for credit the agent will never give.
func (f *udpFlow) end() {
	f.once.Do(func() {
		close(f.done)
		if st := f.st.Load(); st != nil {
			st.Close()
		}
	})
}

// finish removes the flow and gives back the budget of what it still held.
func (f *udpFlow) finish() {
	f.end()
	u := f.u
	u.mu.Lock()
	if u.flows[f.src] == f {
		delete(u.flows, f.src)
	}
	u.mu.Unlock()
	for {
		select {
		case d := <-f.q:
			u.queued.Add(-int64(len(d)))
		default:
			return
		}
	}
}

// expire ends flows idle for longer than the idle timeout, checking a few
// times per timeout so a flow lives at most about 1.25 timeouts.
func (u *udpTunnel) expire() {
	idle := u.cfg.UDPIdleTimeout
	tick := time.NewTicker(max(idle/4, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-u.stop:
			return
		}
		u.mu.Lock()
		cutoff := time.Now().Add(-idle).UnixNano()
		for _, f := range u.flows {
			if f.last.Load() < cutoff {
				f.end()
			}
		}
		u.mu.Unlock()
	}
}

// close ends the tunnel: its socket and every flow.
func (u *udpTunnel) close() {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return
	}
	u.closed = true
	close(u.stop)
	u.cancel()
	for _, f := range u.flows {
		f.end()
	}
	u.mu.Unlock()
	u.pc.Close()
}
