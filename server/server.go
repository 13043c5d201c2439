package server

import (
	"context"
	"crypto/rand"
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

	"github.com/sluicehq/sluice/internal/buildinfo"
	"github.com/sluicehq/sluice/policy"
	"github.com/sluicehq/sluice/transport"
)

// Software names this build in Welcome messages and the ACME client's
// User-Agent.
var Software = buildinfo.Get().Software("sluice-edge")

// Server is a running edge. Create it with New, run it with Serve.
type Server struct {
	cfg   Config
	log   *slog.Logger
	reg   *registry
	auth  atomic.Pointer[authTable]
	lim   atomic.Pointer[Limits]
	gate  gate
	fails authFailures
	warn  *summary

	ownerMu      sync.Mutex
	ownerTunnels map[ownerID]int
	ownerFurther map[ownerID]int // of those, further sessions' shares (fleet_owners.go)
	ownerStreams sync.Map        // ownerID → *atomic.Int64

	ctrlLn  net.Listener
	httpLn  net.Listener
	httpSrv *http.Server
	proxy   *httputil.ReverseProxy
	https   *httpsIngress

	metrics  *edgeMetrics // nil unless Config.Metrics is set
	metering bool         // count bytes per tunnel: metrics or admin asked
	// policyKey seals the traffic policy's sign-in cookies; policy is the
	// operator's rules for every tunnel (Config.Policy), replaced on reload.
	policyKey [32]byte
	policy    atomic.Pointer[policy.Spec]
	admin     *adminServer // nil unless Config.Admin is set
	fleet     *edgeFleet   // nil unless Config.FleetListen is set
	con       *consoleEdge // the console's view of this edge; nil without admin

	nextTunnel atomic.Uint32
	sessions   sync.Map // *agentConn → struct{}
	wg         sync.WaitGroup
	served     atomic.Bool
	draining   atomic.Bool // the health check answers 503
}

// New fills cfg's zero fields, validates it and opens the edge's listeners,
// so that Addr and HTTPAddr are known before Serve runs and a port already in
// use is reported here.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	auth, err := newAuthTable(cfg.Tokens, cfg.TokenRules, cfg.Domain)
	if err != nil {
		return nil, configErr("TokenRules", "%v", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, warn: &summary{log: cfg.Logger}, ownerTunnels: map[ownerID]int{}, ownerFurther: map[ownerID]int{}}
	// Sign-in sessions of the traffic policy survive an agent's reconnect
	// (the key is the edge's) and, with a state directory or a fleet, a
	// restart; in a fleet every edge opens them.
	if s.policyKey, err = policySessionKey(cfg.FleetSecret, cfg.StateDir); err != nil {
		return nil, configErr("StateDir", "%v", err)
	}
	s.policy.Store(cfg.Policy)
	s.auth.Store(auth)
	lim := cfg.Limits
	s.lim.Store(&lim)
	if err := s.initObservability(); err != nil {
		return nil, err
	}

	ln, err := transport.Listen(context.Background(), cfg.Listen, transport.DefaultTCPOptions(), cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("server: listen for agents on %s: %w (is another edge running? pick another address)", cfg.Listen, err)
	}
	s.ctrlLn = ln
	if err := s.openFleet(); err != nil {
		ln.Close()
		return nil, err
	}
	if s.reg, err = s.openRegistry(); err != nil {
		ln.Close()
		s.closeFleet()
		return nil, err
	}
	if s.fleet != nil {
		s.fleet.ready() // mirrors of leased ports look the registry up
	}
	if cfg.HTTPListener != nil {
		s.httpLn = s.acceptProxy(cfg.HTTPListener)
		s.initHTTP()
	} else if cfg.HTTP != "" {
		hl, err := net.Listen("tcp", cfg.HTTP)
		if err != nil {
			ln.Close()
			s.reg.store.Close()
			return nil, fmt.Errorf("server: listen for HTTP on %s: %w (is another server using it? pick another address)", cfg.HTTP, err)
		}
		s.httpLn = s.acceptProxy(hl)
		s.initHTTP()
	}
	if err := s.openHTTPS(); err != nil {
		ln.Close()
		if s.httpLn != nil {
			s.httpLn.Close()
		}
		return nil, err
	}
	if err := s.openAdmin(); err != nil {
		s.closeListeners()
		return nil, err
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

// Stats is a snapshot of the edge's load, for an embedding program's
// monitoring and for checks that an edge has let go of a departed agent.
type Stats struct {
	Sessions  int // agents connected and authenticated
	Streams   int // streams open across all sessions
	Hostnames int // hostnames held by a session or reserved for a reconnecting agent
	Ports     int // TCP and UDP ports held by a session or reserved for a reconnecting agent
	// LargestStreamWindow is the largest receive window among the streams
	// open on the edge, in bytes: above the initial 256 KiB only when
	// window auto-tuning grew it for a long, fast link.
	LargestStreamWindow int64
}

// Stats returns a snapshot of the edge's load.
func (s *Server) Stats() Stats {
	var st Stats
	s.sessions.Range(func(k, _ any) bool {
		st.Sessions++
		sess := k.(*agentConn).sess
		st.Streams += sess.NumStreams()
		st.LargestStreamWindow = max(st.LargestStreamWindow, sess.Stats().LargestStreamWindow)
		return true
	})
	st.Hostnames, st.Ports = s.reg.count()
	return st
}

// Serve accepts agents and public connections until ctx is done or a
// listener fails, then closes every session and returns once every goroutine
// it started has ended. It returns nil when ctx ended it. Call it once.
func (s *Server) Serve(ctx context.Context) error {
	if !s.served.CompareAndSwap(false, true) {
		return errors.New("server: Serve called twice")
	}
	// Agents' sessions live on life, not ctx: when ctx ends they carry the
	// work in flight through the drain, and end with it.
	life, endLife := context.WithCancel(context.WithoutCancel(ctx))
	defer endLife()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 5)
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.warn.run(life, s.cfg.Limits.WarnInterval)
	}()
	go func() {
		defer s.wg.Done()
		errc <- s.acceptAgents(ctx, life)
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
	s.serveHTTPS(errc)
	s.serveAdmin(ctx, errc)
	if s.fleet != nil {
		s.fleet.serve(errc)
	}
	s.log.Info("edge listening", "agents", s.Addr().String(), "http", addrString(s.HTTPAddr()), "domain", s.cfg.Domain, "tls", s.cfg.TLS != nil)

	var err error
	select {
	case <-ctx.Done():
		s.log.Info("edge stopping: draining requests and connections in flight", "timeout", s.cfg.DrainTimeout)
	case err = <-errc:
		if err != nil {
			err = fmt.Errorf("server: %w", err)
		}
	}
	cancel()
	if err == nil && s.cfg.DrainTimeout > 0 {
		s.drain(s.cfg.DrainTimeout)
	}
	s.ctrlLn.Close()
	for _, srv := range s.publicServers() {
		srv.Close()
	}
	s.closeAdmin()
	endLife()
	s.sessions.Range(func(k, _ any) bool {
		k.(*agentConn).sess.Close()
		return true
	})
	s.reg.close()
	s.closeFleet()
	s.wg.Wait()
	s.reg.store.Close()
	return err
}

func (s *Server) closeFleet() {
	if s.fleet != nil {
		s.fleet.close()
	}
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// acceptAgents accepts agents until ctx ends; their sessions live on life.
func (s *Server) acceptAgents(ctx, life context.Context) error {
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
		p, why := s.gate.enter(conn, s.limits())
		if p == nil {
			s.warn.warn(src, "agent connection refused before its handshake", "why", why)
			conn.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveAgent(life, p, src)
		}()
	}
}

func newSessionID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) httpURL(host string) string {
	if s.https != nil {
		return s.httpsURL(host)
	}
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
