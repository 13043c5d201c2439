package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// TCPOptions tunes the TCP socket under a session. Start from
// [DefaultTCPOptions]; the zero value turns Nagle and keepalive off.
type TCPOptions struct {
	// NoDelay sets TCP_NODELAY. The mux batches frames itself, so Nagle's
	// algorithm would only add delay to small replies.
	NoDelay bool

	// KeepAlive turns on TCP keepalive probes, which keep NAT and firewall
	// state alive on an idle tunnel and find a peer that vanished silently.
	KeepAlive bool
	// KeepAliveIdle is the idle time before the first probe (TCP_KEEPIDLE).
	// Zero means 15s. Whole seconds; at least 1s.
	KeepAliveIdle time.Duration
	// KeepAliveInterval is the time between probes (TCP_KEEPINTVL).
	// Zero means 5s. Whole seconds; at least 1s.
	KeepAliveInterval time.Duration
	// KeepAliveCount is how many unanswered probes end the connection
	// (TCP_KEEPCNT). Zero means 3. At most 127.
	KeepAliveCount int

	// SendBuffer and RecvBuffer set SO_SNDBUF and SO_RCVBUF in bytes. Zero
	// (the default) leaves the kernel's buffer autotuning on, which is what
	// a WAN link wants; a fixed size turns autotuning off for that socket.
	SendBuffer int
	RecvBuffer int

	// NotSentLowat sets TCP_NOTSENT_LOWAT in bytes (Linux only): the socket
	// reports writable only while less than this much data waits unsent in
	// the kernel, which keeps bulk data in the mux's queue, where a small
	// frame can still overtake it, instead of in the kernel's send buffer,
	// a FIFO that autotunes to megabytes (40 ms at 100 MB/s) in front of
	// every small frame. Zero leaves it unset. [DefaultTCPOptions] sets
	// [DefaultNotSentLowat]. Lower costs bulk throughput, since the writer
	// then wakes every few frames: BenchmarkNotSentLowatThroughput shows
	// 16 KiB halving it over loopback, and through the tunnel on loopback
	// 128 and 256 KiB cost 10-20% of one connection's throughput where
	// 1 MiB costs 0-7%, within the noise (docs/DATAPATH.md has the figures).
	NotSentLowat int
}

// Defaults used by [DefaultTCPOptions] and for zero keepalive fields: a dead
// peer is found about 30s after the connection goes idle.
const (
	DefaultKeepAliveIdle     = 15 * time.Second
	DefaultKeepAliveInterval = 5 * time.Second
	DefaultKeepAliveCount    = 3
)

// DefaultNotSentLowat is the TCP_NOTSENT_LOWAT of [DefaultTCPOptions]: at
// most about this much of a session's data waits unsent in the kernel,
// ahead of a small frame the mux would send first (10 ms at 100 MB/s,
// where the kernel's own send buffer grows to 4 MB, 40 ms).
const DefaultNotSentLowat = 1 << 20

// DefaultTCPOptions returns the options for a tunnel connection: TCP_NODELAY
// on, keepalive on with the default timings, kernel buffer autotuning, and
// TCP_NOTSENT_LOWAT at [DefaultNotSentLowat].
func DefaultTCPOptions() TCPOptions {
	return TCPOptions{
		NoDelay:           true,
		KeepAlive:         true,
		KeepAliveIdle:     DefaultKeepAliveIdle,
		KeepAliveInterval: DefaultKeepAliveInterval,
		KeepAliveCount:    DefaultKeepAliveCount,
		NotSentLowat:      DefaultNotSentLowat,
	}
}

// withDefaults fills zero keepalive fields.
func (o TCPOptions) withDefaults() TCPOptions {
	if o.KeepAliveIdle == 0 {
		o.KeepAliveIdle = DefaultKeepAliveIdle
	}
	if o.KeepAliveInterval == 0 {
		o.KeepAliveInterval = DefaultKeepAliveInterval
	}
	if o.KeepAliveCount == 0 {
		o.KeepAliveCount = DefaultKeepAliveCount
	}
	return o
}

// Kernel limits for the keepalive settings (Linux: MAX_TCP_KEEPIDLE,
// MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT).
const (
	maxKeepAliveSeconds = 32767
	maxKeepAliveCount   = 127
)

// Validate reports the first option the kernel would reject, after zero
// keepalive fields take their defaults.
func (o TCPOptions) Validate() error {
	o = o.withDefaults()
	if o.KeepAlive {
		for _, d := range []struct {
			name string
			v    time.Duration
		}{{"KeepAliveIdle", o.KeepAliveIdle}, {"KeepAliveInterval", o.KeepAliveInterval}} {
			if d.v < time.Second || d.v > maxKeepAliveSeconds*time.Second {
				return fmt.Errorf("transport: TCP option %s = %v is out of range; use between 1s and %ds", d.name, d.v, maxKeepAliveSeconds)
			}
		}
		if o.KeepAliveCount < 1 || o.KeepAliveCount > maxKeepAliveCount {
			return fmt.Errorf("transport: TCP option KeepAliveCount = %d is out of range; use between 1 and %d", o.KeepAliveCount, maxKeepAliveCount)
		}
	}
	if o.SendBuffer < 0 || o.RecvBuffer < 0 || o.NotSentLowat < 0 {
		return fmt.Errorf("transport: TCP buffer options must not be negative (SendBuffer=%d RecvBuffer=%d NotSentLowat=%d); use 0 for the kernel default", o.SendBuffer, o.RecvBuffer, o.NotSentLowat)
	}
	return nil
}

// Dialer opens the agent's connection to the edge.
type Dialer interface {
	DialContext(ctx context.Context, addr string) (net.Conn, error)
}

// NewDialer returns a Dialer for TCP with the given options, and TLS on top
// when tlsConfig is not nil (build it with [ClientTLS.Config]). If the
// tls.Config has no ServerName, the host part of addr is used. A TLS dial
// returns after the handshake.
func NewDialer(opts TCPOptions, tlsConfig *tls.Config) (Dialer, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if tlsConfig != nil && tlsConfig.MinVersion < tls.VersionTLS13 {
		return nil, errors.New("transport: client tls.Config allows versions below TLS 1.3; build it with ClientTLS.Config or set MinVersion to tls.VersionTLS13")
	}
	return &dialer{opts: opts.withDefaults(), tls: tlsConfig}, nil
}

type dialer struct {
	opts TCPOptions
	tls  *tls.Config
}

func (d *dialer) DialContext(ctx context.Context, addr string) (net.Conn, error) {
	nd := net.Dialer{
		// Keepalive is set by applyTCP; -1 stops the net package from
		// overwriting it with its own defaults.
		KeepAlive: -1,
		// Buffer sizes must be set before connect so the window scale in
		// the SYN matches them.
		Control: func(_, _ string, rc syscall.RawConn) error { return controlBuffers(rc, d.opts) },
	}
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: connect to %s: %w; check the address and that the edge is listening", addr, err)
	}
	if err := applyTCP(c.(*net.TCPConn), d.opts); err != nil {
		c.Close()
		return nil, err
	}
	if d.tls == nil {
		return c, nil
	}
	cfg := d.tls
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("transport: address %q has no port: %w", addr, err)
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	tc := newTLSConn(c, cfg, true)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, handshakeError("with edge "+addr, err, trustOf(cfg.RootCAs, "the configured CA file"))
	}
	return tc, nil
}

// Listen opens the edge's listener on addr ("host:port"; port 0 picks one).
// Every accepted connection gets opts. With a non-nil tlsConfig (build it with
// [ServerTLS.Config]) accepted connections are *TLSConn whose handshake has
// not run yet; see [Handshake]. ctx bounds only the setup of the listener.
func Listen(ctx context.Context, addr string, opts TCPOptions, tlsConfig *tls.Config) (net.Listener, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if tlsConfig != nil && tlsConfig.MinVersion < tls.VersionTLS13 {
		return nil, errors.New("transport: server tls.Config allows versions below TLS 1.3; build it with ServerTLS.Config or set MinVersion to tls.VersionTLS13")
	}
	opts = opts.withDefaults()
	lc := net.ListenConfig{
		KeepAlive: -1, // applyTCP sets keepalive on each accepted connection
		// Accepted sockets inherit the listener's buffer sizes, and the
		// window scale in the SYN-ACK is chosen from them before Accept.
		Control: func(_, _ string, rc syscall.RawConn) error { return controlBuffers(rc, opts) },
	}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen on %s: %w; check the address is local and the port is free", addr, err)
	}
	return &tcpListener{TCPListener: ln.(*net.TCPListener), opts: opts, tls: tlsConfig}, nil
}

// tcpListener applies TCPOptions to every accepted connection, and wraps it
// in TLS when tls is set.
type tcpListener struct {
	*net.TCPListener
	opts TCPOptions
	tls  *tls.Config
}

func (l *tcpListener) Accept() (net.Conn, error) {
	for {
		c, err := l.TCPListener.AcceptTCP()
		if err != nil {
			return nil, err
		}
		// The options were already accepted by the listening socket, so
		// a failure here means this connection died between accept and
		// setsockopt; drop it rather than fail the accept loop.
		if err := applyTCP(c, l.opts); err != nil {
			c.Close()
			continue
		}
		if l.tls != nil {
			return newTLSConn(c, l.tls, false), nil
		}
		return c, nil
	}
}

// Handshake runs the TLS handshake of a connection from a TLS [Listen] and
// bounds it by ctx; it does nothing for a plain TCP connection. Run it before
// handing the connection to the mux, so a failed handshake is reported as one
// (with the reason) rather than as a broken session.
func Handshake(ctx context.Context, c net.Conn) error {
	tc, ok := c.(*TLSConn)
	if !ok {
		return nil
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		return handshakeError("with agent "+c.RemoteAddr().String(), err, "the configured client CA file")
	}
	return nil
}
