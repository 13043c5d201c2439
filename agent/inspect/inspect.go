// Package inspect is the agent's request inspector: a web page and a JSON
// API on a loopback address that show every HTTP request through the
// agent's tunnels as it happens, with headers and bodies, and replay them
// to the local service.
//
// It plugs into the agent as its HTTP middleware:
//
//	in, err := inspect.New(inspect.Config{})
//	cfg.HTTPMiddleware = in.Wrap
//	go in.Serve()
//	fmt.Println("inspector:", in.URL())
//
// Captured traffic is private: every page and API call needs the per-run
// secret (the cookie the printed link sets, or Authorization: Bearer), and
// requests with a foreign Host or Origin are refused, so no other web page
// open in the same browser can read it (DNS rebinding, CSRF). See
// docs/INSPECTOR.md.
package inspect

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/cfgerr"
)

// DefaultAddr is where the inspector listens unless told otherwise: ngrok's
// port, which developers already know.
const DefaultAddr = "127.0.0.1:4040"

// Defaults of Config.
const (
	DefaultBodyLimit   = 1 << 20
	DefaultMaxRequests = 500
	DefaultMaxBytes    = 64 << 20
)

// Config configures an inspector. The zero value is ready to use.
type Config struct {
	// Addr is the listen address. Empty means DefaultAddr, and then the
	// next free port (up to 20 further) if 4040 is taken; an explicit
	// address taken is an error.
	Addr string
	// BodyLimit caps the bytes kept of each request and response body.
	// Zero means DefaultBodyLimit; negative keeps no body at all.
	BodyLimit int64
	// MaxRequests and MaxBytes bound the ring of entries kept; the oldest
	// go first. Zero means the defaults.
	MaxRequests int
	MaxBytes    int64
	// Secret authorises the page and API. Empty means a random one.
	Secret string
	// Logger receives the inspector's warnings. Nil discards them.
	Logger *slog.Logger
}

// ConfigError says which field of a Config is wrong and why; New returns it
// for every invalid Config.
type ConfigError = cfgerr.Error

// ListenError means the inspector's address could not be bound.
type ListenError struct {
	Addr string
	Err  error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("inspect: cannot listen on %s: %v: pick another address or turn the inspector off", e.Addr, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }

func (c *Config) fill() error {
	if c.BodyLimit == 0 {
		c.BodyLimit = DefaultBodyLimit
	}
	if c.BodyLimit < 0 {
		c.BodyLimit = 0
	}
	if c.MaxRequests == 0 {
		c.MaxRequests = DefaultMaxRequests
	}
	if c.MaxRequests < 0 {
		return cfgerr.New("inspect", "MaxRequests", "%d is negative: give a positive count", c.MaxRequests)
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxBytes < 0 {
		return cfgerr.New("inspect", "MaxBytes", "%d is negative: give a positive byte count", c.MaxBytes)
	}
	if c.Secret == "" {
		var b [16]byte
		rand.Read(b[:])
		c.Secret = hex.EncodeToString(b[:])
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Inspector captures requests and serves the page and API about them.
type Inspector struct {
	cfg  Config
	ring *ring
	ln   net.Listener
	srv  *http.Server
	port string

	mu       sync.Mutex
	handlers map[int]http.Handler // per tunnel: where replays go

	done      chan struct{}
	closeOnce sync.Once
}

// New validates cfg and binds the inspector's address.
func New(cfg Config) (*Inspector, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	ln, err := listen(cfg.Addr)
	if err != nil {
		return nil, err
	}
	in := &Inspector{
		cfg: cfg, ring: newRing(cfg.MaxRequests, cfg.MaxBytes), ln: ln,
		handlers: map[int]http.Handler{}, done: make(chan struct{}),
	}
	_, in.port, _ = net.SplitHostPort(ln.Addr().String())
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		cfg.Logger.Warn("the request inspector is reachable from the network: it shows every request's headers and bodies to whoever has its secret; bind it to 127.0.0.1 unless that is intended", "addr", ln.Addr().String())
	}
	in.srv = &http.Server{Handler: in.routes(), ReadHeaderTimeout: 10 * time.Second}
	return in, nil
}

func listen(addr string) (net.Listener, error) {
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, &ListenError{addr, err}
		}
		return ln, nil
	}
	host, p, _ := net.SplitHostPort(DefaultAddr)
	base, _ := strconv.Atoi(p)
	for port := base; port <= base+20; port++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err == nil {
			return ln, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, &ListenError{DefaultAddr, err}
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, &ListenError{DefaultAddr, err}
	}
	return ln, nil
}

// Addr is the address the inspector listens on.
func (in *Inspector) Addr() net.Addr { return in.ln.Addr() }

// Secret is the secret that authorises the page and API.
func (in *Inspector) Secret() string { return in.cfg.Secret }

// URL opens the page already authorised: the secret rides as the query
// parameter secret, which the page trades for a cookie.
func (in *Inspector) URL() string {
	host := in.ln.Addr().String()
	if tcp, ok := in.ln.Addr().(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		host = net.JoinHostPort("127.0.0.1", in.port)
	}
	return "http://" + host + "/?secret=" + url.QueryEscape(in.cfg.Secret)
}

// Serve serves the page and API until Close. It returns nil after Close.
func (in *Inspector) Serve() error {
	err := in.srv.Serve(in.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops serving and ends the live event streams.
func (in *Inspector) Close() error {
	in.closeOnce.Do(func() { close(in.done) })
	return in.srv.Close()
}

// Wrap is the agent's HTTP middleware (agent.Config.HTTPMiddleware): it
// captures every request of tunnel index on its way to next, and keeps
// next as where replays of that tunnel go.
func (in *Inspector) Wrap(index int, next http.Handler) http.Handler {
	in.mu.Lock()
	in.handlers[index] = next
	in.mu.Unlock()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.capture(index, next, w, r, 0)
	})
}

// Refused records that the edge's traffic policy answered requests of
// tunnel index itself: one entry per report, for the first such request
// (method, path and client; no headers or body ever cross), naming the
// rule and how many requests it stands for. Pass it as the agent's
// OnPolicyRefused.
func (in *Inspector) Refused(index int, m control.PolicyRefused) {
	e := &Entry{Tunnel: index, Time: time.Now(), Method: m.Method, URI: m.Path, RemoteAddr: m.Client, Status: m.Status,
		ReqHeader: http.Header{}, RespHeader: http.Header{}}
	if e.Method == "" {
		e.Method = "CONNECT" // a TCP connection or UDP datagram
	}
	e.RefusedBy = fmt.Sprintf("%s rule %q (%s)", m.Source, m.Rule, m.Action)
	if m.Count > 1 {
		e.RefusedBy += fmt.Sprintf(", %d requests", m.Count)
	}
	in.ring.add(e)
}

// capture serves r through next and stores what went in and out.
func (in *Inspector) capture(index int, next http.Handler, w http.ResponseWriter, r *http.Request, replayOf uint64) *Entry {
	e := &Entry{
		Tunnel: index, Time: time.Now(), Method: r.Method, URI: r.URL.RequestURI(), Host: r.Host,
		Proto: r.Proto, RemoteAddr: r.RemoteAddr, ReqHeader: r.Header.Clone(), ReplayOf: replayOf,
	}
	reqBody := &capBuffer{limit: in.cfg.BodyLimit}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &teeBody{rc: r.Body, cap: reqBody}
	}
	cw := &captureWriter{ResponseWriter: w, body: capBuffer{limit: in.cfg.BodyLimit}}
	defer func() {
		e.Duration = time.Since(e.Time)
		e.ReqBody, e.ReqSize, e.ReqTruncated = reqBody.buf, reqBody.size, reqBody.truncated
		e.Status, e.RespHeader = cw.status, cw.header
		e.RespBody, e.RespSize, e.RespTruncated = cw.body.buf, cw.body.size, cw.body.truncated
		if v := recover(); v != nil {
			e.Err = fmt.Sprint("handler panicked: ", v)
			in.ring.add(e)
			panic(v) // net/http's own recovery logs it and drops the connection
		}
		if e.Status == 0 && r.Context().Err() != nil {
			e.Err = "the client went away before a response"
		}
		in.ring.add(e)
	}()
	next.ServeHTTP(cw, r)
	return e
}
