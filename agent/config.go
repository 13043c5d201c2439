package agent

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/cfgerr"
	"github.com/sluicehq/sluice/mux"
)

// ConfigError says which field of a Config is wrong and why; New returns it
// for every invalid Config.
type ConfigError = cfgerr.Error

// Config configures an agent.
type Config struct {
	// Server is the edge's agent address, "host:port".
	Server string
	// Servers are more edges of the same fleet, "host:port" each, tried
	// after Server. An edge in a fleet also tells the agent the others,
	// so one address is enough; these help when that edge is down as the
	// agent starts.
	Servers []string
	// Sessions is how many edges the agent keeps a session to at once,
	// each a different edge, when it knows that many. Zero means
	// DefaultSessions; 1 keeps one session, moved to another edge when it
	// is lost.
	Sessions int
	// Token is the secret the edge expects.
	Token string
	// TLS is the client TLS configuration (build it with transport.ClientTLS).
	// Nil means plain TCP (--insecure).
	TLS *tls.Config
	// Tunnels are registered on every session, in order.
	Tunnels []Tunnel
	// Mux configures the session; mux fills the fields left zero.
	Mux mux.Config
	// Logger receives the agent's logs. Nil discards them.
	Logger *slog.Logger
	// DialTimeout bounds one connection attempt: dial, TLS, hello, auth and
	// registration. Zero means 10 s.
	DialTimeout time.Duration
	// FirstConnectTimeout is how long Run keeps retrying before the first
	// session is up; after it Run fails with an *UnreachableError. Zero means
	// 5 s; negative retries forever. Once connected, Run always reconnects.
	FirstConnectTimeout time.Duration
	// StableAfter is how long a session must last for the reconnect backoff
	// to start over. Zero means 10 s.
	StableAfter time.Duration
	// Backoff shapes reconnect delays (defaults: 250 ms first, 30 s cap).
	Backoff Backoff
	// ShutdownTimeout bounds how long in-flight connections may finish after
	// Run's context ends. Zero means 10 s.
	ShutdownTimeout time.Duration
	// OnAssigned is called each time the edge confirms a tunnel, on the first
	// session and after every reconnect; index is the tunnel's position in
	// Tunnels.
	OnAssigned func(index int, a control.Assigned)
	// OnPolicyRefused is called when the edge reports that its traffic
	// policy answered clients of a tunnel itself (the request inspector
	// shows them); index is the tunnel's position in Tunnels.
	OnPolicyRefused func(index int, m control.PolicyRefused)
	// Metrics, when set, receives the agent's Prometheus collectors (see
	// docs/METRICS.md). Nil turns metrics off.
	Metrics prometheus.Registerer
	// HTTPMiddleware, when set, wraps the handler of every HTTP tunnel (the
	// proxy to its local service); index is the tunnel's position in
	// Tunnels. The request inspector uses it to capture and replay
	// requests. Setting it makes the agent parse HTTP on every HTTP tunnel
	// but those with a ProxyProtocol, which must pipe bytes and are left
	// unwrapped.
	HTTPMiddleware func(index int, next http.Handler) http.Handler
}

func configErr(field, format string, args ...any) error {
	return cfgerr.New("agent", field, format, args...)
}

// validate names the first field that cannot work, once setDefaults has
// filled the zero ones: each error names one field and says what to give.
func (c *Config) validate() error {
	if c.Server == "" {
		return configErr("Server", "no edge address: give host:port, e.g. tunnel.example.com:7835")
	}
	if _, _, err := net.SplitHostPort(c.Server); err != nil {
		return configErr("Server", "edge address %q: %v: write it as host:port, e.g. tunnel.example.com:7835", c.Server, err)
	}
	for i, s := range c.Servers {
		if _, _, err := net.SplitHostPort(s); err != nil || s == "" {
			return configErr(fmt.Sprintf("Servers[%d]", i), "edge address %q: write it as host:port, e.g. edge2.example.com:7835", s)
		}
	}
	if c.Sessions < 1 || c.Sessions > MaxSessions {
		return configErr("Sessions", "%d sessions: give 1 to %d (%d is the default)", c.Sessions, MaxSessions, DefaultSessions)
	}
	if c.Token == "" {
		return configErr("Token", "no token: give the edge's token")
	}
	if len(c.Tunnels) == 0 {
		return configErr("Tunnels", "no tunnel to register: give at least one")
	}
	for i, t := range c.Tunnels {
		field := fmt.Sprintf("Tunnels[%d]", i)
		switch t.Kind {
		case control.KindHTTP:
			if t.Local == "" && t.Handler == nil && t.listener == nil {
				return configErr(field+".Local", "HTTP tunnel %d has no local service: give its host:port", i+1)
			}
			switch t.UpstreamProtocol {
			case "", UpstreamHTTP1, UpstreamHTTP2:
			default:
				return configErr(field+".UpstreamProtocol", "%q is not an upstream protocol: use %s or %s", t.UpstreamProtocol, UpstreamHTTP1, UpstreamHTTP2)
			}
			if t.Name != "" && t.Hostname != "" {
				// The hostname would route the tunnel and the name only
				// label it in the edge's logs: nobody means that.
				return configErr(field+".Hostname", "HTTP tunnel %d has both a name (%q) and a hostname (%q): give one; the name asks for NAME.DOMAIN, the hostname routes that exact host", i+1, t.Name, t.Hostname)
			}
			if h := t.HostHeader; h != "" && h != HostPreserve && h != HostRewrite && !validHost(h) {
				return configErr(field+".HostHeader", "%q is neither %s, %s nor a host or host:port", h, HostPreserve, HostRewrite)
			}
		case control.KindTCP:
			if t.Local == "" && t.listener == nil {
				return configErr(field+".Local", "TCP tunnel %d has no local address: give host:port", i+1)
			}
		case control.KindUDP:
			if t.Local == "" || t.listener != nil {
				return configErr(field+".Local", "UDP tunnel %d has no local address: give host:port", i+1)
			}
		default:
			return configErr(field+".Kind", "tunnel %d has kind %q: use http, tcp or udp", i+1, t.Kind)
		}
		if err := checkProxyProtocol(field, i, t); err != nil {
			return err
		}
		if err := checkPolicy(field, t); err != nil {
			return err
		}
		if t.Local != "" {
			if err := checkHostPort(t.Local); err != nil {
				return configErr(field+".Local", "local service of tunnel %d: %v", i+1, err)
			}
		}
		if t.RemotePort < 0 || t.RemotePort > 65535 {
			return configErr(field+".RemotePort", "%d is out of range 1-65535: give a port, or 0 to let the edge choose", t.RemotePort)
		}
	}
	if err := c.Mux.Validate(); err != nil {
		return err // a *ConfigError of package mux, naming its field
	}
	return nil
}

// MaxSessions bounds Config.Sessions: each session costs every edge it
// lands on, and past a few no edge is any closer.
const MaxSessions = 8

// edges is Server and Servers, without repeats.
func (c *Config) edges() []string {
	out := []string{c.Server}
	for _, s := range c.Servers {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// LocalAddr turns the short forms people type for a local service into the
// host:port the agent dials: "3000" is "localhost:3000", ":3000" is
// "localhost:3000". It accepts the same ports Config does (1-65535).
func LocalAddr(s string) (string, error) {
	if _, err := strconv.Atoi(s); err == nil {
		s = "localhost:" + s
	} else if host, port, err := net.SplitHostPort(s); err == nil && host == "" {
		s = net.JoinHostPort("localhost", port)
	}
	if err := checkHostPort(s); err != nil {
		return "", err
	}
	return s, nil
}

// checkHostPort accepts "host:port" with a port in 1-65535.
func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: give host:port, e.g. 127.0.0.1:3000", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q: port %q is not a number in 1-65535", addr, port)
	}
	return nil
}

// setDefaults fills every field left zero, one by one, so a partly filled
// Config is normal.
func (c *Config) setDefaults() {
	if c.Sessions == 0 {
		c.Sessions = DefaultSessions
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.FirstConnectTimeout == 0 {
		c.FirstConnectTimeout = 5 * time.Second
	}
	if c.StableAfter <= 0 {
		c.StableAfter = 10 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}
