package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/control"
)

// The datagram path of a UDP tunnel: the edge keeps one
// flow per public source address. A flow is one mux stream to the agent that
// carries length-prefixed datagrams both ways (control.AppendDatagram); it
// ends after UDPIdleTimeout without a datagram in either direction. Each
// flow has a bounded queue in front of its stream, and all flows of a
// tunnel share a byte budget: when the stream is backed up (the agent or the
// local service is slower than the public senders), new datagrams are
// dropped, as a congested router would, instead of growing memory.

// udpIngress is the public side of one UDP port: its socket and its
// flows, each of which goes to a target that pick chose for its source (a
// member of the endpoint, or in a fleet an edge that has one).
type udpIngress struct {
	s    *Server
	port int
	pc   *net.UDPConn
	cfg  *Config
	// pick chooses the target of a new flow from src, or says why the
	// datagram is dropped.
	pick func(src netip.AddrPort) (udpTarget, udpDropReason)

	mu     sync.Mutex
	flows  map[netip.AddrPort]*udpFlow
	closed bool
	stop   chan struct{}   // closed with the endpoint
	ctx    context.Context // ends with the endpoint, so flows opening a stream give up
	cancel context.CancelFunc

	queued atomic.Int64
	drops  udpDrops
	wg     sync.WaitGroup
}

// udpTarget is where a flow's datagrams go: a stream of length-prefixed
// datagrams both ways (control.AppendDatagram).
type udpTarget interface {
	// openFlow opens the flow's stream for the public source src, which
	// sent to the public address local; release is called after it closed.
	openFlow(ctx context.Context, src netip.AddrPort, local string) (st io.ReadWriteCloser, release func(), err error)
	// count adds the payload bytes of datagrams sent to the target (in)
	// and of its replies (out) to its meters.
	count(in, out int64)
	logger() *slog.Logger
}

// errRefusedFlow is what openFlow returns when policy refused the source:
// the flow stays, dropping its datagrams, until it is idle, so a refused
// sender costs one decision per idle timeout and not one per datagram.
var errRefusedFlow = errors.New("the tunnel's policy refused the source")

// udpFlow is one public source address and its stream.
type udpFlow struct {
	u    *udpIngress
	to   udpTarget
	src  netip.AddrPort
	q    chan []byte // each a datagram with its length prefix
	last atomic.Int64
	st   atomic.Pointer[io.ReadWriteCloser]
	done chan struct{}
	once sync.Once
}

func (t *tunnel) openFlow(ctx context.Context, src netip.AddrPort, local string) (io.ReadWriteCloser, func(), error) {
	return t.openFor(ctx, src.String(), local, nil)
}

func (t *tunnel) count(in, out int64) {
	t.meter.AToB.Add(in)
	t.meter.BToA.Add(out)
}

func (t *tunnel) logger() *slog.Logger { return t.ac.log }

// pickMember is the target of a flow on the endpoint's own port: the next
// member, if its policy admits src.
func (s *Server) pickMember(ep *endpoint) func(netip.AddrPort) (udpTarget, udpDropReason) {
	return func(src netip.AddrPort) (udpTarget, udpDropReason) {
		t := ep.pick()
		if t == nil {
			return nil, dropNoAgent
		}
		if _, ok := s.admit(access{t: t, remote: src}); !ok {
			return nil, dropPolicy
		}
		return t, 0
	}
}

// serve reads public datagrams until the socket closes, and expires idle
// flows.
func (u *udpIngress) serve() {
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
				u.s.log.Warn("UDP tunnel socket keeps failing; closing the tunnel's port", "port", u.port, "err", err)
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
func (u *udpIngress) deliver(src netip.AddrPort, p []byte) {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return
	}
	f := u.flows[src]
	if f == nil {
		if len(u.flows) >= u.cfg.UDPMaxFlows {
			u.mu.Unlock()
			u.drops.add(dropFlowLimit)
			return
		}
		to, why := u.pick(src)
		if to == nil {
			u.mu.Unlock()
			u.drops.add(why)
			return
		}
		f = &udpFlow{u: u, to: to, src: src, q: make(chan []byte, u.cfg.UDPFlowQueue), done: make(chan struct{})}
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
		u.drops.add(dropByteBudget)
		return
	}
	d, _ := control.AppendDatagram(make([]byte, 0, size), p)
	select {
	case f.q <- d:
	default:
		u.queued.Add(-size)
		u.drops.add(dropFlowQueue)
	}
}

func (f *udpFlow) touch() { f.last.Store(time.Now().UnixNano()) }

// run opens the flow's stream and writes its queued datagrams to it, while
// another goroutine sends the agent's replies back to the source.
func (f *udpFlow) run() {
	u := f.u
	defer f.finish()
	ctx, cancel := context.WithTimeout(u.ctx, udpStreamOpenTimeout)
	st, release, err := f.to.openFlow(ctx, f.src, u.pc.LocalAddr().String())
	cancel()
	if errors.Is(err, errRefusedFlow) {
		f.refused()
		return
	}
	if err != nil {
		f.to.logger().Debug("UDP flow dropped: opening a stream to the agent failed", "port", u.port, "from", f.src, "err", err)
		return
	}
	defer release()
	f.st.Store(&st)
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
			f.to.count(int64(len(d)-control.DatagramOverhead), 0) // the payload, for metrics and the admin view
		case <-f.done:
			return
		}
	}
}

// replies writes each datagram the agent sends on st to the flow's source.
func (f *udpFlow) replies(st io.Reader) {
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
		f.to.count(0, int64(n))
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
			(*st).Close()
		}
	})
}

// refused drops the flow's datagrams until it ends, idle: its source was
// refused.
func (f *udpFlow) refused() {
	for {
		select {
		case d := <-f.q:
			f.u.queued.Add(-int64(len(d)))
			f.u.drops.add(dropPolicy)
		case <-f.done:
			return
		}
	}
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
func (u *udpIngress) expire() {
	idle := u.cfg.UDPIdleTimeout
	tick := time.NewTicker(max(idle/4, time.Millisecond))
	defer tick.Stop()
	summary := time.NewTicker(u.cfg.Limits.WarnInterval)
	defer summary.Stop()
	for {
		select {
		case <-tick.C:
		case <-summary.C:
			u.drops.summarize(u.s.log, u.port)
			continue
		case <-u.stop:
			u.drops.summarize(u.s.log, u.port)
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

// endFlowsOf ends the flows that go to t, a member leaving the endpoint:
// the next datagram from each source opens a flow to a member still there.
func (u *udpIngress) endFlowsOf(t *tunnel) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, f := range u.flows {
		if f.to == udpTarget(t) {
			f.end()
		}
	}
}

// close ends the endpoint's socket and every flow.
func (u *udpIngress) close() {
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
