package server

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/internal/cfgerr"
	"github.com/sluicehq/sluice/mux"
)

// ConfigError says which field of a Config is wrong and why; New returns it
// for every invalid Config.
type ConfigError = cfgerr.Error

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
	// Mux configures every agent session; mux fills the fields left zero,
	// except the accept backlog, 4 here (an agent opens only its control
	// stream), and the stream limit, Limits.StreamsPerSession.
	Mux mux.Config
	// Logger receives the edge's logs. Nil discards them.
	Logger *slog.Logger
	// ReclaimGrace is how long a disconnected agent's lease on a name or
	// port lasts: within it the agent gets the same URL back (random ones
	// too) and other owners are refused. Zero means DefaultReclaimGrace;
	// negative disables leases beyond the session.
	ReclaimGrace time.Duration
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

	// HTTPS, HTTPSListener, HTTPSCertFile, HTTPSKeyFile, HTTPPlain,
	// PublicHTTPSPort, StateDir, ACMEDirectory, ACMEEmail and ACMERoots
	// configure the public HTTPS ingress (see https.go). StateDir also
	// holds the edge's leases (see lease.go); empty keeps them in memory
	// unless HTTPS needs the per-user state directory.
	HTTPS                       string
	HTTPSListener               net.Listener
	HTTPSCertFile, HTTPSKeyFile string
	HTTPPlain                   bool
	PublicHTTPSPort             int
	StateDir                    string
	ACMEDirectory, ACMEEmail    string
	ACMERoots                   *x509.CertPool
	// TrustedProxies are the peers whose forwarding headers the edge
	// extends instead of replacing (see forwarded.go).
	TrustedProxies []netip.Prefix
	// UDPPortMin and UDPPortMax bound the ports of UDP tunnels, as
	// TCPPortMin and TCPPortMax do for TCP. UDP tunnels bind on TCPHost.
	UDPPortMin, UDPPortMax int
	// UDPIdleTimeout ends a UDP flow (one public source address) after this
	// long without a datagram either way. Zero means one minute.
	UDPIdleTimeout time.Duration
	// UDPMaxFlows bounds the flows of one UDP tunnel; datagrams from further
	// sources are dropped. Zero means 1024.
	UDPMaxFlows int
	// UDPFlowQueue bounds the datagrams waiting for one flow's stream.
	// Zero means 64.
	UDPFlowQueue int
	// UDPQueueBytes bounds the datagram bytes waiting across one tunnel's
	// flows. Zero means 4 MiB.
	UDPQueueBytes int64

	// AcceptProxyProtocol lists the load balancers in front of the edge:
	// connections from these addresses to the HTTP ingress and to TCP
	// tunnel ports must start with a PROXY protocol header, whose client
	// address the edge then uses; a header from any other address is
	// refused. Empty: the edge reads no headers.
	AcceptProxyProtocol []netip.Prefix
	// ProxyHeaderTimeout bounds the wait for a load balancer's header.
	// Zero means 5 s.
	ProxyHeaderTimeout time.Duration

	// Metrics, when set, receives the edge's Prometheus collectors (see
	// docs/METRICS.md). Nil turns metrics off.
	Metrics prometheus.Registerer
	// Admin, when set, serves the edge's status page and JSON listing on
	// this address ("host:port"); AdminToken is then required as its
	// bearer token (see admin.go).
	Admin      string
	AdminToken string
	// TokensFile is the file TokenRules were read from, if any: revoking
	// a token in the console rewrites it, so the revocation outlives a
	// reload or a restart.
	TokensFile string
}

func configErr(field, format string, args ...any) error {
	return cfgerr.New("server", field, format, args...)
}

// Validate reports the first field of c that New would refuse, as a
// *ConfigError, without opening any listener.
func (c Config) Validate() error { return c.validate() }

// validate checks the fields a caller must set or may set wrongly. It runs
// before setDefaults, so a zero field means "not set".
func (c *Config) validate() error {
	if c.Listen == "" {
		return configErr("Listen", "no agent listen address: give host:port, e.g. 0.0.0.0:7835")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return configErr("Listen", "%q: %v: write it as host:port", c.Listen, err)
	}
	if len(c.Tokens) == 0 && len(c.TokenRules) == 0 {
		return configErr("Tokens", "no token configured: give at least one secret that agents must present (in Tokens or TokenRules)")
	}
	for i, r := range c.TokenRules {
		if _, err := compileRule(r, c.Domain); err != nil {
			return configErr("TokenRules", "entry %d: %v", i+1, err)
		}
	}
	for _, tok := range c.Tokens {
		if tok == "" {
			return configErr("Tokens", "an empty token is not allowed: every agent must present a secret")
		}
	}
	if (c.HTTP != "" || c.HTTPListener != nil || c.HTTPS != "" || c.HTTPSListener != nil) && c.Domain == "" {
		return configErr("Domain", "HTTP ingress needs a domain: tunnels answer at NAME.DOMAIN (e.g. localhost, or tunnels.example.com)")
	}
	if c.TCPPortMin < 0 || c.TCPPortMax > 65535 || c.TCPPortMin > c.TCPPortMax || (c.TCPPortMin == 0) != (c.TCPPortMax == 0) {
		return configErr("TCPPortMin", "TCP port range %d-%d is invalid: give MIN-MAX within 1-65535, or both zero for any port", c.TCPPortMin, c.TCPPortMax)
	}
	if c.PublicHTTPPort < 0 || c.PublicHTTPPort > 65535 {
		return configErr("PublicHTTPPort", "%d is not a port: give 1-65535, or 0 for the HTTP listener's port", c.PublicHTTPPort)
	}
	if err := c.Mux.Validate(); err != nil {
		return err // a *ConfigError of package mux, naming its field
	}
	if err := c.validateHTTPS(); err != nil {
		return err
	}
	if err := c.validateAdmin(); err != nil {
		return err
	}
	return c.validateL4()
}

// edgeAcceptBacklog is the accept backlog of the edge's agent sessions.
const edgeAcceptBacklog = 4

// setDefaults fills every field left zero, one by one, so a partly filled
// Config is normal.
func (c *Config) setDefaults() {
	if c.HTTPListener != nil {
		c.HTTP = c.HTTPListener.Addr().String()
	}
	c.setHTTPSDefaults()
	c.Limits.setDefaults()
	// An agent opens one stream, the control stream, and the edge refuses
	// any other: a backlog of 1,024 would cost 8 KiB per session for
	// nothing. mux fills the fields left zero.
	if c.Mux.AcceptBacklog == 0 {
		c.Mux.AcceptBacklog = edgeAcceptBacklog
	}
	if c.Mux.MaxConcurrentStreams == 0 {
		c.Mux.MaxConcurrentStreams = c.Limits.StreamsPerSession
	}
	if c.ReclaimGrace == 0 {
		c.ReclaimGrace = DefaultReclaimGrace
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = 10 * time.Second
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 5 * time.Second
	}
	if c.TCPHost == "" {
		c.TCPHost, _, _ = net.SplitHostPort(c.Listen) // validate checked it
	}
	if c.PublicHost == "" {
		c.PublicHost = c.TCPHost
		if ip := net.ParseIP(c.TCPHost); c.TCPHost == "" || (ip != nil && ip.IsUnspecified()) {
			c.PublicHost = c.Domain
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.setL4Defaults()
}
