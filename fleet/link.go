package fleet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/mux"
	"github.com/sluicehq/sluice/transport"
)

// Kind says what a forwarded stream carries.
type Kind byte

// The kinds of forwarded traffic.
const (
	KindHTTP Kind = 1 + iota
	KindTCP
	KindUDP
	// KindHTTPS is a public HTTP/1.1 connection handed over whole, like
	// KindHTTP, whose client came over TLS that the forwarding edge ended.
	KindHTTPS
	// KindHTTPConn is a kept-alive HTTP/1.1 connection between two edges:
	// requests for any host the accepting edge serves, one after another,
	// each naming its client itself. Its header carries no key; the
	// accepting edge refuses a request for a host it does not serve, not
	// the stream.
	KindHTTPConn
)

// Header opens every forwarded stream: which lease the public traffic is
// for, and who sent it to which public address.
//
//	byte 0      linkVersion
//	byte 1      Kind
//	1+N bytes   length and lease key
//	1+N bytes   length and remote address
//	1+N bytes   length and local address
//
// The accepting edge answers with one status byte, then (when it is not
// statusOK) a length byte and a reason; after statusOK the stream carries
// the traffic both ways.
type Header struct {
	Kind       Kind
	Key        string
	RemoteAddr string
	LocalAddr  string
}

const (
	linkVersion     = 1
	statusOK        = 0
	statusNoSession = 1
	statusRefused   = 2
	// headerTimeout bounds how long an accepted stream may take to send
	// its header, and an opened one to hear the answer.
	headerTimeout = 10 * time.Second
)

var (
	// ErrNoSession means the peer edge has no session to the agent that
	// serves the key (it left since this edge looked); try another holder.
	ErrNoSession = errors.New("fleet: the peer edge has no session for this tunnel")
	// ErrRefused means the peer edge refused the stream for another reason.
	ErrRefused = errors.New("fleet: the peer edge refused the stream")
	// ErrBadHeader means a forwarded stream began with something else than
	// a header this build reads.
	ErrBadHeader = errors.New("fleet: forwarded stream header is malformed (edges of different versions?)")
)

// NoSessionError is what a Handler returns when it has no session for the
// key; the opener sees ErrNoSession.
type NoSessionError struct{ Key string }

func (e NoSessionError) Error() string { return "no session for " + e.Key }

// Handler decides what to do with a forwarded stream from the edge from:
// it returns a function that serves the stream (which it must close), or an
// error to refuse it (NoSessionError when it has no session for h.Key).
type Handler func(from string, h Header) (serve func(net.Conn), err error)

// LinkConfig configures an edge's end of the edge-to-edge links.
type LinkConfig struct {
	// Listen is the fleet address links are accepted on ("host:port").
	Listen string
	// Secret is the fleet secret; a peer without it is refused in the TLS
	// handshake, before any byte of the mux.
	Secret string
	// EdgeID is this edge's identity, carried in its certificate.
	EdgeID string
	// Handler serves the streams other edges forward here.
	Handler Handler
	// Mux tunes the links' sessions; the zero value is mux's defaults.
	Mux mux.Config
	// Logger receives refused links. Default slog.Default().
	Logger *slog.Logger
}

// Links is this edge's end of the edge-to-edge links: a listener other
// edges dial, and one session this edge dials to each peer it forwards to.
// Links are sluice's own mux over TLS 1.3 with certificates both ways from
// the fleet's secret-derived CA.
type Links struct {
	cfg    LinkConfig
	auth   *auth
	ln     net.Listener
	dialer transport.Dialer

	mu       sync.Mutex
	dialed   map[string]*peerLink // by address
	accepted map[*mux.Session]bool
	closed   bool

	out, in sync.Map // peer edge ID -> *atomic.Uint64 streams forwarded
	wg      sync.WaitGroup
}

type peerLink struct {
	ready chan struct{} // closed once the dial ended
	sess  *mux.Session
	peer  string
	err   error
}

// ListenLinks starts accepting links on cfg.Listen.
func ListenLinks(ctx context.Context, cfg LinkConfig) (*Links, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Handler == nil {
		return nil, errors.New("fleet: links need a Handler")
	}
	a, err := newAuth(cfg.Secret, cfg.EdgeID)
	if err != nil {
		return nil, err
	}
	// The agents' TCP options: TCP_NODELAY above all, since the mux
	// batches frames itself and Nagle's algorithm held forwarded replies
	// for milliseconds.
	ln, err := transport.Listen(ctx, cfg.Listen, transport.DefaultTCPOptions(), a.tlsConfig())
	if err != nil {
		return nil, fmt.Errorf("fleet: links: %w", err)
	}
	d, err := transport.NewDialer(transport.DefaultTCPOptions(), a.tlsConfig())
	if err != nil {
		ln.Close()
		return nil, err
	}
	l := &Links{cfg: cfg, auth: a, ln: ln, dialer: d, dialed: map[string]*peerLink{}, accepted: map[*mux.Session]bool{}}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// Addr is the address links are accepted on.
func (l *Links) Addr() net.Addr { return l.ln.Addr() }

func (l *Links) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.serveConn(c)
		}()
	}
}

func (l *Links) serveConn(c net.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), headerTimeout)
	err := transport.Handshake(ctx, c)
	cancel()
	if err != nil {
		l.cfg.Logger.Warn("fleet: refused a link without the fleet's credentials", "from", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	peer := peerID(c)
	sess, err := mux.Server(c, l.cfg.Mux)
	if err != nil {
		c.Close()
		return
	}
	if !l.track(sess) {
		sess.Close()
		return
	}
	defer l.untrack(sess)
	for {
		st, err := sess.AcceptStream(context.Background())
		if err != nil {
			sess.Close()
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.serveStream(peer, st)
		}()
	}
}

func (l *Links) track(s *mux.Session) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.accepted[s] = true
	return true
}

func (l *Links) untrack(s *mux.Session) {
	l.mu.Lock()
	delete(l.accepted, s)
	l.mu.Unlock()
}

func (l *Links) serveStream(peer string, st *mux.Stream) {
	st.SetReadDeadline(time.Now().Add(headerTimeout))
	h, err := readHeader(st)
	if err != nil {
		writeStatus(st, statusRefused, err.Error())
		st.Close()
		return
	}
	st.SetReadDeadline(time.Time{})
	serve, err := l.cfg.Handler(peer, h)
	if err != nil {
		code := byte(statusRefused)
		var ns NoSessionError
		if errors.As(err, &ns) {
			code = statusNoSession
		}
		writeStatus(st, code, err.Error())
		st.Close()
		return
	}
	// Counted before the answer, so the opener never sees a stream
	// accepted that this side has not counted yet.
	counter(&l.in, peer).Add(1)
	if _, err := st.Write([]byte{statusOK}); err != nil {
		st.Close()
		return
	}
	serve(st)
}

// Open forwards to the edge at addr: it opens a stream on the link to it
// (dialing the link first if there is none), sends h and first, and
// returns the stream once the peer accepted it. ErrNoSession means the peer
// cannot serve h.Key; first was not delivered, so the caller may try another
// edge with it.
func (l *Links) Open(ctx context.Context, addr string, h Header, first []byte) (net.Conn, error) {
	p, err := l.link(ctx, addr)
	if err != nil {
		return nil, err
	}
	buf := appendHeader(make([]byte, 0, 64+len(first)), h)
	st, err := p.sess.OpenStreamWith(ctx, append(buf, first...))
	if err != nil {
		return nil, fmt.Errorf("fleet: forward to %s: %w", addr, err)
	}
	deadline := time.Now().Add(headerTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	st.SetReadDeadline(deadline)
	if err := readStatus(st); err != nil {
		st.Close()
		return nil, fmt.Errorf("fleet: forward to %s: %w", addr, err)
	}
	st.SetReadDeadline(time.Time{})
	counter(&l.out, p.peer).Add(1)
	return st, nil
}

// link returns the live session to addr, dialing one when there is none
// (one dial at a time per address; callers meanwhile wait for it).
func (l *Links) link(ctx context.Context, addr string) (*peerLink, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, errors.New("fleet: links closed")
	}
	p := l.dialed[addr]
	if p != nil {
		select {
		case <-p.ready:
			if p.err == nil && p.sess.Err() == nil {
				l.mu.Unlock()
				return p, nil
			}
			p = nil // failed or ended: dial again
		default:
		}
	}
	if p == nil {
		p = &peerLink{ready: make(chan struct{})}
		l.dialed[addr] = p
		go l.dial(addr, p)
	}
	l.mu.Unlock()
	select {
	case <-p.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if p.err != nil {
		return nil, p.err
	}
	return p, nil
}

func (l *Links) dial(addr string, p *peerLink) {
	defer close(p.ready)
	ctx, cancel := context.WithTimeout(context.Background(), headerTimeout)
	defer cancel()
	c, err := l.dialer.DialContext(ctx, addr)
	if err != nil {
		p.err = fmt.Errorf("fleet: link to %s: %w", addr, err)
		return
	}
	sess, err := mux.Client(c, l.cfg.Mux)
	if err != nil {
		c.Close()
		p.err = err
		return
	}
	// Streams travel one way on a dialed link; the peer forwards to this
	// edge on the link it dialed itself.
	sess.RefuseStreams()
	p.sess, p.peer = sess, peerID(c)
}

// Drop closes the link to addr, if any (its peer left the fleet).
func (l *Links) Drop(addr string) {
	l.mu.Lock()
	p := l.dialed[addr]
	delete(l.dialed, addr)
	l.mu.Unlock()
	if p != nil {
		<-p.ready
		if p.sess != nil {
			p.sess.Close()
		}
	}
}

// Forwarded returns how many streams this edge opened to each peer edge
// (out) and accepted from each (in), by edge ID.
func (l *Links) Forwarded() (out, in map[string]uint64) {
	return snapshot(&l.out), snapshot(&l.in)
}

// StreamsOpen reports the streams open now on the links this edge dialed, by peer
// edge ID: forwarded TCP connections, handed-over HTTP connections and the
// kept-alive HTTP streams, busy or idle.
func (l *Links) StreamsOpen() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, p := range l.dialed {
		select {
		case <-p.ready:
			if p.sess != nil {
				out[p.peer] += p.sess.NumStreams()
			}
		default:
		}
	}
	return out
}

// Close stops accepting links and closes every link and stream.
func (l *Links) Close() error {
	l.mu.Lock()
	l.closed = true
	dialed := l.dialed
	l.dialed = map[string]*peerLink{}
	var acc []*mux.Session
	for s := range l.accepted {
		acc = append(acc, s)
	}
	l.mu.Unlock()
	err := l.ln.Close()
	for _, p := range dialed {
		<-p.ready
		if p.sess != nil {
			p.sess.Close()
		}
	}
	for _, s := range acc {
		s.Close()
	}
	l.wg.Wait()
	return err
}

// peerID is the edge ID in the verified certificate of a link's peer.
func peerID(c net.Conn) string {
	tc, ok := c.(interface{ ConnectionState() tls.ConnectionState })
	if !ok {
		return ""
	}
	if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
		return certs[0].Subject.CommonName
	}
	return ""
}

func counter(m *sync.Map, peer string) *atomic.Uint64 {
	if v, ok := m.Load(peer); ok {
		return v.(*atomic.Uint64)
	}
	v, _ := m.LoadOrStore(peer, new(atomic.Uint64))
	return v.(*atomic.Uint64)
}

func snapshot(m *sync.Map) map[string]uint64 {
	out := map[string]uint64{}
	m.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return out
}

func appendHeader(b []byte, h Header) []byte {
	b = append(b, linkVersion, byte(h.Kind))
	for _, s := range []string{h.Key, h.RemoteAddr, h.LocalAddr} {
		if len(s) > 255 {
			s = "" // dropped, not truncated: half an address misleads
		}
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	return b
}

func readHeader(r io.Reader) (Header, error) {
	var fixed [2]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return Header{}, fmt.Errorf("%w: %v", ErrBadHeader, err)
	}
	if fixed[0] != linkVersion {
		return Header{}, fmt.Errorf("%w: version %d, this edge speaks %d", ErrBadHeader, fixed[0], linkVersion)
	}
	h := Header{Kind: Kind(fixed[1])}
	if h.Kind < KindHTTP || h.Kind > KindHTTPConn {
		return Header{}, fmt.Errorf("%w: kind %d", ErrBadHeader, fixed[1])
	}
	for _, dst := range []*string{&h.Key, &h.RemoteAddr, &h.LocalAddr} {
		s, err := readShort(r)
		if err != nil {
			return Header{}, fmt.Errorf("%w: %v", ErrBadHeader, err)
		}
		*dst = s
	}
	if h.Key == "" && h.Kind != KindHTTPConn {
		return Header{}, fmt.Errorf("%w: no lease key", ErrBadHeader)
	}
	return h, nil
}

func readShort(r io.Reader) (string, error) {
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", err
	}
	b := make([]byte, n[0])
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return string(b), nil
}

func writeStatus(w io.Writer, code byte, reason string) {
	if len(reason) > 255 {
		reason = reason[:255]
	}
	w.Write(append([]byte{code, byte(len(reason))}, reason...))
}

func readStatus(r io.Reader) error {
	var code [1]byte
	if _, err := io.ReadFull(r, code[:]); err != nil {
		return fmt.Errorf("no answer from the peer edge: %w", err)
	}
	if code[0] == statusOK {
		return nil
	}
	reason, err := readShort(r)
	if err != nil {
		reason = "(reason lost: " + err.Error() + ")"
	}
	if code[0] == statusNoSession {
		return fmt.Errorf("%w: %s", ErrNoSession, reason)
	}
	return fmt.Errorf("%w: %s", ErrRefused, reason)
}
