// Package server is the sluice edge: it accepts agents on a control listener
// (one mux session per agent), authenticates them, gives their tunnels public
// hostnames and TCP ports, and carries every public connection to the right
// agent as a new stream of that agent's session.
//
// Embed it with New and Serve:
//
//	srv, err := server.New(server.Config{Listen: "127.0.0.1:7835", HTTP: "127.0.0.1:8080", Domain: "localhost", Tokens: []string{"T"}})
//	if err != nil { ... }
//	err = srv.Serve(ctx) // until ctx is done
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/mux"
	"github.com/sluicehq/sluice/transport"
)

// Software names this build in Hello and Welcome messages.
const Software = "sluice-edge/0.1"

// Config configures an edge. Listen and Tokens are required; HTTP and Domain
// are required together for HTTP tunnels.
type Config struct {
	// Listen is where agents connect ("host:port"; port 0 picks one).
	Listen string
	// HTTP is the public HTTP ingress ("host:port"); empty serves no HTTP
	// tunnels.
	HTTP string
	// HTTPListener, when set, is used for the HTTP ingress instead of
	// opening HTTP (the edge takes ownership and closes it).
	HTTPListener net.Listener
	// Domain is the parent domain of tunnel hostnames: a tunnel named
	// "myapp" answers at myapp.<Domain>.
	Domain string
	// Tokens are the accepted agent tokens. Each token is also an identity:
	// a name held by one token cannot be taken by another.
	Tokens []string
	// TLS, when set, makes the agent listener TLS (build it with
	// transport.ServerTLS). Nil means plain TCP.
	TLS *tls.Config
	// TCPHost is the address TCP tunnels listen on. Empty means the host of
	// Listen.
	TCPHost string
	// TCPPortMin and TCPPortMax bound the ports of TCP tunnels, requested or
	// chosen. Both zero: any requested port, and an ephemeral one otherwise.
	TCPPortMin, TCPPortMax int
	// PublicHost is the host put in tcp:// URLs. Empty means TCPHost, or
	// Domain when TCPHost is a wildcard address.
	PublicHost string
	// PublicHTTPPort is the port put in http:// URLs, for an edge behind a
	// port-forwarding proxy. Zero means the HTTP listener's port.
	PublicHTTPPort int
	// Mux configures every agent session. The zero value means
	// mux.DefaultConfig().
	Mux mux.Config
	// Logger receives the edge's logs. Nil discards them.
	Logger *slog.Logger
	// ReclaimGrace is how long a disconnected agent's lease on a name or
	// port lasts: within it the agent gets the same URL back (random ones
	// too) and other owners are refused. Zero means DefaultReclaimGrace;
	// negative disables leases beyond the session.
	ReclaimGrace time.Duration
	// StateDir is where the edge keeps its leases across restarts (a file
	// per agent port). Empty keeps them in memory only.
	StateDir string
	// TokenRules are owners' tokens with what each may claim, usually read
	// from a tokens file with LoadTokensFile. They add to Tokens.
	TokenRules []TokenRule
	// Limits bound unauthenticated connections, tunnels and streams. Zero
	// fields take their documented defaults.
	Limits Limits
	// ReadHeaderTimeout bounds how long a public HTTP client may take to send
	// its request headers (against slowloris). Zero means 10 s.
	ReadHeaderTimeout time.Duration
	// MaxHeaderBytes bounds the request headers of a public HTTP client.
	// Zero means 64 KiB.
	MaxHeaderBytes int
	// HandshakeTimeout bounds an agent's TLS handshake, preface, hello and
	// auth. Zero means 5 s.
	HandshakeTimeout time.Duration
}

// Server is a running edge. Create it with New, run it with Serve.
type Server struct {
	cfg   Config
	log   *slog.Logger
	reg   *Registry
	auth  atomic.Pointer[authTable]
	lim   atomic.Pointer[Limits]
	gate  gate
	fails authFailures
	warn  *summary

	ownerMu      sync.Mutex
	ownerTunnels map[Owner]int

	ctrlLn  net.Listener
	httpLn  net.Listener
	httpSrv *http.Server
	proxy   *httputil.ReverseProxy

	nextTunnel atomic.Uint32
	sessions   sync.Map // *agentConn → struct{}
	wg         sync.WaitGroup
	served     atomic.Bool
}

// New validates cfg and opens the edge's listeners, so that Addr and HTTPAddr
// are known before Serve runs and a port already in use is reported here.
func New(cfg Config) (*Server, error) {
	if cfg.Listen == "" {
		return nil, errors.New("server: no agent listen address: set Listen (--listen), e.g. 0.0.0.0:7835")
	}
	if len(cfg.Tokens) == 0 && len(cfg.TokenRules) == 0 {
		return nil, errors.New("server: no token configured: set at least one token in Tokens or TokenRules that agents must present")
	}
	for _, tok := range cfg.Tokens {
		if tok == "" {
			return nil, errors.New("server: an empty token is not allowed: every agent must present a secret")
		}
	}
	if cfg.HTTPListener != nil {
		cfg.HTTP = cfg.HTTPListener.Addr().String()
	}
	if cfg.HTTP != "" && cfg.Domain == "" {
		return nil, errors.New("server: HTTP ingress needs a domain: set Domain (--domain), e.g. localhost or tunnels.example.com")
	}
	if cfg.TCPPortMin < 0 || cfg.TCPPortMax > 65535 || cfg.TCPPortMin > cfg.TCPPortMax {
		return nil, fmt.Errorf("server: TCP port range %d-%d is invalid: give MIN-MAX within 1-65535", cfg.TCPPortMin, cfg.TCPPortMax)
	}
	cfg.Limits.setDefaults()
	if cfg.Mux == (mux.Config{}) {
		cfg.Mux = mux.DefaultConfig()
		cfg.Mux.MaxConcurrentStreams = cfg.Limits.StreamsPerSession
	}
	if err := cfg.Mux.Validate(); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if cfg.ReclaimGrace == 0 {
		cfg.ReclaimGrace = DefaultReclaimGrace
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = 10 * time.Second
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = 64 << 10
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 5 * time.Second
	}
	if cfg.TCPHost == "" {
		host, _, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("server: listen address %q: %v: write it as host:port", cfg.Listen, err)
		}
		cfg.TCPHost = host
	}
	if cfg.PublicHost == "" {
		cfg.PublicHost = cfg.TCPHost
		if ip := net.ParseIP(cfg.TCPHost); cfg.TCPHost == "" || (ip != nil && ip.IsUnspecified()) {
			cfg.PublicHost = cfg.Domain
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	auth, err := newAuthTable(cfg.Tokens, cfg.TokenRules, cfg.Domain)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s := &Server{cfg: cfg, log: log, warn: &summary{log: log}, ownerTunnels: map[Owner]int{}}
	s.auth.Store(auth)
	lim := cfg.Limits
	s.lim.Store(&lim)

	ln, err := transport.Listen(context.Background(), cfg.Listen, transport.DefaultTCPOptions(), cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("server: listen for agents on %s: %w (is another edge running? pick another agent port)", cfg.Listen, err)
	}
	s.ctrlLn = ln
	if s.reg, err = s.openRegistry(); err != nil {
		ln.Close()
		return nil, err
	}
	if cfg.HTTPListener != nil {
		s.httpLn = cfg.HTTPListener
		s.initHTTP()
	} else if cfg.HTTP != "" {
		hl, err := net.Listen("tcp", cfg.HTTP)
		if err != nil {
			ln.Close()
			s.reg.store.Close()
			return nil, fmt.Errorf("server: listen for HTTP on %s: %w (pick another --http port)", cfg.HTTP, err)
		}
		s.httpLn = hl
		s.initHTTP()
	}
	return s, nil
}

// Addr returns the address agents connect to.
func (s *Server) Addr() net.Addr { return s.ctrlLn.Addr() }

// HTTPAddr returns the HTTP ingress address, or nil when there is none.
func (s *Server) HTTPAddr() net.Addr {
	if s.httpLn == nil {
		return nil
	}
	return s.httpLn.Addr()
}

// Registry returns the edge's tunnel registry.
func (s *Server) Registry() *Registry { return s.reg }

// Stats is a snapshot of the edge's load.
type Stats struct {
	Sessions int // agents connected and authenticated
	Streams  int // streams open across all sessions
}

// Stats returns a snapshot of the edge's load.
func (s *Server) Stats() Stats {
	var st Stats
	s.sessions.Range(func(k, _ any) bool {
		st.Sessions++
		st.Streams += k.(*agentConn).sess.NumStreams()
		return true
	})
	return st
}

// Serve accepts agents and public connections until ctx is done or a
// listener fails, then closes every session and returns once every goroutine
// it started has ended. It returns nil when ctx ended it. Call it once.
func (s *Server) Serve(ctx context.Context) error {
	if !s.served.CompareAndSwap(false, true) {
		return errors.New("server: Serve called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.warn.run(ctx, s.cfg.Limits.WarnInterval)
	}()
	go func() {
		defer s.wg.Done()
		errc <- s.acceptAgents(ctx)
	}()
	if s.httpSrv != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			err := s.httpSrv.Serve(s.httpLn)
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			errc <- err
		}()
	}
	s.log.Info("edge listening", "agents", s.Addr().String(), "http", addrString(s.HTTPAddr()), "domain", s.cfg.Domain, "tls", s.cfg.TLS != nil)

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		if err != nil {
			err = fmt.Errorf("server: %w", err)
		}
	}
	cancel()
	s.ctrlLn.Close()
	if s.httpSrv != nil {
		// Let requests in flight finish briefly; hijacked (upgraded)
		// connections end when their sessions close below.
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		if s.httpSrv.Shutdown(sctx) != nil {
			s.httpSrv.Close()
		}
		scancel()
	}
	s.sessions.Range(func(k, _ any) bool {
		k.(*agentConn).sess.Close()
		return true
	})
	s.wg.Wait()
	s.reg.store.Close()
	return err
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

func (s *Server) acceptAgents(ctx context.Context) error {
	var backoff time.Duration
	for {
		conn, err := s.ctrlLn.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: wait instead of spinning,
			// as net/http does, and keep serving the agents already in.
			backoff = max(5*time.Millisecond, min(2*backoff, time.Second))
			s.log.Warn("accepting an agent connection failed; retrying", "err", err, "wait", backoff)
			select {
			case <-time.After(backoff):
				continue
			case <-ctx.Done():
				return nil
			}
		}
		backoff = 0
		src := sourceIP(conn.RemoteAddr())
		if ok, why := s.gate.enter(src, *s.lim.Load()); !ok {
			s.warn.warn(src, "agent connection refused before its handshake", "why", why)
			conn.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveAgent(ctx, conn, src)
		}()
	}
}

func newSessionID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) httpURL(host string) string {
	port := s.cfg.PublicHTTPPort
	if port == 0 && s.httpLn != nil {
		if a, ok := s.httpLn.Addr().(*net.TCPAddr); ok {
			port = a.Port
		}
	}
	if port == 80 || port == 0 {
		return "http://" + host
	}
	return "http://" + host + ":" + strconv.Itoa(port)
}
