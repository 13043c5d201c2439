package proxyproto

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// DefaultHeaderTimeout bounds how long a trusted peer may take to send its
// header. A load balancer writes it at once, so this only has to outlast a
// slow network.
const DefaultHeaderTimeout = 5 * time.Second

// ErrUntrusted is returned by a Conn's Read when a peer that is not trusted
// sends a PROXY header: it is trying to choose the address the edge reports.
var ErrUntrusted = errors.New("proxyproto: a PROXY protocol header from a peer outside the trusted ranges: connection refused")

// ErrMissing is returned when a trusted peer's connection does not start
// with a PROXY header.
var ErrMissing = errors.New("proxyproto: a trusted peer sent no PROXY protocol header: connection refused")

// Listener wraps the listener of a public port behind load balancers: a
// connection from a Trusted address must start with a PROXY header, whose
// addresses then become the connection's RemoteAddr and LocalAddr; a
// connection from anywhere else that starts with one is refused.
//
// The header is required, not optional, from trusted peers, as the
// specification asks: a receiver that guesses lets whoever can reach it
// through the balancer pick their address. Trust no range that untrusted
// clients can connect from directly.
type Listener struct {
	net.Listener
	// Trusted lists the load balancers' addresses.
	Trusted []netip.Prefix
	// HeaderTimeout bounds the wait for a trusted peer's header. Zero means
	// DefaultHeaderTimeout.
	HeaderTimeout time.Duration
	// OnRefused, when set, is called once for every connection refused,
	// with the peer's address and the reason.
	OnRefused func(peer net.Addr, err error)
}

// Accept returns the next connection, wrapped. It never waits for a header:
// that happens on the connection's first Read, RemoteAddr or LocalAddr, in
// the caller's goroutine, so one slow peer cannot stall the accept loop.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	timeout := l.HeaderTimeout
	if timeout <= 0 {
		timeout = DefaultHeaderTimeout
	}
	return &Conn{Conn: c, trusted: l.trusts(c.RemoteAddr()), timeout: timeout, onRefused: l.OnRefused}, nil
}

func (l *Listener) trusts(a net.Addr) bool {
	ap, ok := addrPort(a)
	if !ok {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range l.Trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func addrPort(a net.Addr) (netip.AddrPort, bool) {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort(), true
	}
	if a == nil {
		return netip.AddrPort{}, false
	}
	ap, err := netip.ParseAddrPort(a.String())
	return ap, err == nil
}

// Conn is a connection accepted by a Listener.
type Conn struct {
	net.Conn
	trusted   bool
	timeout   time.Duration
	onRefused func(net.Addr, error)

	once    sync.Once
	err     error
	hdr     Header
	pending []byte // read past the header (trusted) or while checking (untrusted)

	dlMu       sync.Mutex
	readDL     time.Time // the caller's read deadline, restored after the header
	checked    bool      // untrusted: the first bytes were looked at
	readFailed error     // untrusted: a read error met while checking, returned after pending
}

// Resolve reads a trusted peer's header now, if it has not been read. It
// returns why the connection must be refused, if it must; the connection is
// then already closed. For an untrusted peer it does nothing.
func (c *Conn) Resolve() error {
	if !c.trusted {
		return nil
	}
	c.once.Do(c.readHeader)
	return c.err
}

func (c *Conn) readHeader() {
	c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	br := bufio.NewReaderSize(c.Conn, 512)
	h, err := Read(br)
	c.dlMu.Lock()
	c.Conn.SetReadDeadline(c.readDL)
	c.dlMu.Unlock()
	switch {
	case errors.Is(err, ErrNotProxy):
		c.refuse(ErrMissing)
		return
	case err != nil:
		c.refuse(fmt.Errorf("%w (from a trusted peer: connection refused)", err))
		return
	}
	c.hdr = h
	if n := br.Buffered(); n > 0 {
		c.pending, _ = br.Peek(n)
		c.pending = bytes.Clone(c.pending)
	}
}

func (c *Conn) refuse(err error) {
	c.err = err
	if c.onRefused != nil {
		c.onRefused(c.Conn.RemoteAddr(), err)
	}
	c.Conn.Close()
}

// Read reads the connection's data: for a trusted peer what follows its
// header; for anyone else everything, unless it starts with a PROXY header.
func (c *Conn) Read(b []byte) (int, error) {
	if c.trusted {
		if err := c.Resolve(); err != nil {
			return 0, err
		}
	} else if !c.checked {
		if err := c.check(); err != nil {
			return 0, err
		}
	}
	if len(c.pending) > 0 {
		n := copy(b, c.pending)
		c.pending = c.pending[n:]
		if len(c.pending) == 0 {
			c.pending = nil
		}
		return n, nil
	}
	if c.readFailed != nil {
		return 0, c.readFailed
	}
	return c.Conn.Read(b)
}

// check reads an untrusted peer's first bytes, as they arrive, until they
// are known not to be a PROXY signature. It waits only while what came so
// far could still be one (at most 12 bytes), so a protocol in which the
// server speaks first is not held up: nothing is read before the client
// writes.
func (c *Conn) check() error {
	var buf [12]byte
	n := 0
	for {
		if bytes.HasPrefix(buf[:n], v1Sig) || bytes.Equal(buf[:n], v2Sig) {
			c.checked = true
			c.refuse(ErrUntrusted)
			c.readFailed = ErrUntrusted
			return ErrUntrusted
		}
		if n > 0 && !bytes.HasPrefix(v1Sig, buf[:n]) && !bytes.HasPrefix(v2Sig, buf[:n]) {
			break
		}
		m, err := c.Conn.Read(buf[n:])
		n += m
		if err != nil {
			c.readFailed = err
			break
		}
	}
	c.checked = true
	c.pending = bytes.Clone(buf[:n])
	return nil
}

// RemoteAddr is the client's address: from the header for a trusted peer
// that sent a PROXY command, the socket's peer otherwise.
func (c *Conn) RemoteAddr() net.Addr {
	if c.Resolve() == nil && c.trusted && !c.hdr.Local {
		return net.TCPAddrFromAddrPort(c.hdr.Source)
	}
	return c.Conn.RemoteAddr()
}

// LocalAddr is the address the client connected to: from the header for a
// trusted peer that sent a PROXY command, the socket's own otherwise.
func (c *Conn) LocalAddr() net.Addr {
	if c.Resolve() == nil && c.trusted && !c.hdr.Local {
		return net.TCPAddrFromAddrPort(c.hdr.Dest)
	}
	return c.Conn.LocalAddr()
}

// SetDeadline records the read deadline so that reading the header, which
// sets its own, puts the caller's back afterwards.
func (c *Conn) SetDeadline(t time.Time) error {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	c.readDL = t
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline: see SetDeadline.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	c.readDL = t
	return c.Conn.SetReadDeadline(t)
}

// CloseWrite half-closes the connection, for relays.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// Reset aborts the connection so the client sees a reset, not a clean end.
func (c *Conn) Reset() error {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	return c.Conn.Close()
}

// SyscallConn exposes the socket once nothing is left to filter or replay:
// a trusted peer's header has been read and no data was read past it. Until
// then it fails, and readers fall back to Read.
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	if !c.trusted || c.Resolve() != nil || len(c.pending) > 0 {
		return nil, errors.New("proxyproto: the connection's first bytes are still being filtered")
	}
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("proxyproto: not a socket")
	}
	return sc.SyscallConn()
}
