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
	"github.com/sluicehq/sluice/internal/proxyproto"
	"github.com/sluicehq/sluice/internal/statedir"
	"github.com/sluicehq/sluice/mux"
	"github.com/sluicehq/sluice/policy"
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
	// DrainTimeout bounds a graceful stop: when Serve's context ends, the
	// requests and connections in flight get this long to finish before
	// they are cut. Zero means DefaultDrainTimeout; negative, no drain.
	DrainTimeout time.Duration
	// HandshakeTimeout bounds an agent's TLS handshake, preface, hello and
	// auth. Zero means 5 s.
	HandshakeTimeout time.Duration

	// HTTPS, HTTPSListener, HTTPSCertFile, HTTPSKeyFile, HTTPPlain,
	// PublicHTTPSPort, StateDir, ACMEDirectory, ACMEEmail and ACMERoots
	// configure the public HTTPS ingress (see https.go). StateDir also
	// holds the edge's leases (see lease.go) and the key of the policy's
	// sign-in sessions (see policy_key.go); empty keeps them in memory
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

	// Policy is the operator's traffic policy for every tunnel (see
	// package policy and docs/POLICY.md). Its rules run before the owner's
	// (TokenRule.Policy) and the agent's, which cannot skip them.
	Policy *policy.Spec

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

	// FleetListen, when set, makes this edge one of a fleet (see fleet.go
	// and docs/FLEET.md): other edges link to it on this address, and its
	// embedded store's routes listen on the next port. FleetJoin lists the
	// fleet addresses of the edges to cluster with (it may include this
	// one); FleetSecret, shared by every edge, authenticates them. NATS,
	// when set, keeps the fleet's state in that NATS (with JetStream)
	// instead of an embedded store, with NATSCredsFile, NATSCAFile,
	// NATSCertFile and NATSKeyFile for its credentials and TLS. Without
	// FleetListen the edge is alone and starts no NATS.
	FleetListen                                          string
	FleetJoin                                            []string
	FleetSecret                                          string
	NATS                                                 string
	NATSCredsFile, NATSCAFile, NATSCertFile, NATSKeyFile string
}

func configErr(field, format string, args ...any) error {
	return cfgerr.New("server", field, format, args...)
}

// Validate reports the first field of c that New would refuse, as a
// *ConfigError, without opening any listener. Fields left zero take their
// defaults first, as in New.
func (c Config) Validate() error {
	c.setDefaults()
	return c.validate()
}

// edgeAcceptBacklog is the accept backlog of the edge's agent sessions.
const edgeAcceptBacklog = 4

// setDefaults fills every field left zero, one by one, so a partly filled
// Config is normal. Defaults that depend on another field follow what the
// caller set there; a field set wrongly is left for validate to name.
func (c *Config) setDefaults() {
	if c.HTTPListener != nil {
		c.HTTP = c.HTTPListener.Addr().String()
	}
	if c.HTTPSListener != nil {
		c.HTTPS = c.HTTPSListener.Addr().String()
	}
	// HTTPS without a static certificate gets its certificates over ACME,
	// from Let's Encrypt unless told otherwise, and keeps them in the
	// per-user state directory.
	if c.HTTPS != "" && c.HTTPSCertFile == "" && c.HTTPSKeyFile == "" {
		if c.ACMEDirectory == "" {
			c.ACMEDirectory = DefaultACMEDirectory
		}
		if c.StateDir == "" {
			c.StateDir, _ = statedir.Default() // validate names the failure
		}
	}
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
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 5 * time.Second
	}
	if c.TCPHost == "" {
		c.TCPHost, _, _ = net.SplitHostPort(c.Listen) // validate names a bad Listen
	}
	if c.PublicHost == "" {
		c.PublicHost = c.TCPHost
		if ip := net.ParseIP(c.TCPHost); c.TCPHost == "" || (ip != nil && ip.IsUnspecified()) {
			c.PublicHost = c.Domain
		}
	}
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
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// validate names the first field that cannot work, once setDefaults has
// filled the zero ones: each error names one field and says what to give.
func (c *Config) validate() error {
	// The fleet: the library checks the rest when the edge joins.
	if c.FleetListen == "" && (len(c.FleetJoin) > 0 || c.FleetSecret != "" || c.NATS != "") {
		return configErr("FleetListen", "joining a fleet needs this edge's fleet address, host:port, where other edges link to it")
	}
	if c.FleetListen != "" && c.FleetSecret == "" {
		return configErr("FleetSecret", "a fleet needs a secret shared by every edge; give each the same long random string")
	}
	// Agents and their tokens.
	if c.Listen == "" {
		return configErr("Listen", "no agent listen address: give host:port, e.g. 0.0.0.0:7835")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return configErr("Listen", "%q: %v: write it as host:port", c.Listen, err)
	}
	if len(c.Tokens) == 0 && len(c.TokenRules) == 0 {
		return configErr("Tokens", "no token configured: give at least one secret that agents must present (in Tokens or TokenRules)")
	}
	if err := checkImposedPolicy("server", c.Policy); err != nil {
		return cfgerr.Wrap("server", "Policy", err)
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
	if err := c.Mux.Validate(); err != nil {
		return err // a *ConfigError of package mux, naming its field
	}

	// HTTP and HTTPS ingress.
	if (c.HTTP != "" || c.HTTPS != "") && c.Domain == "" {
		return configErr("Domain", "HTTP ingress needs a domain: tunnels answer at NAME.DOMAIN (e.g. localhost, or tunnels.example.com)")
	}
	if c.PublicHTTPPort < 0 || c.PublicHTTPPort > 65535 {
		return configErr("PublicHTTPPort", "%d is not a port: give 1-65535, or 0 for the HTTP listener's port", c.PublicHTTPPort)
	}
	static := c.HTTPSCertFile != "" || c.HTTPSKeyFile != ""
	if c.HTTPS == "" {
		switch {
		case static:
			return configErr("HTTPSCertFile", "a certificate is given but there is no HTTPS ingress: set HTTPS too")
		case c.ACMEDirectory != "" || c.ACMEEmail != "":
			return configErr("ACMEDirectory", "ACME is configured but there is no HTTPS ingress: set HTTPS too")
		case c.HTTPPlain:
			return configErr("HTTPPlain", "keeping plain HTTP beside HTTPS means nothing without an HTTPS ingress: set HTTPS, or drop HTTPPlain")
		}
	} else {
		if c.PublicHTTPSPort < 0 || c.PublicHTTPSPort > 65535 {
			return configErr("PublicHTTPSPort", "%d is outside 1-65535", c.PublicHTTPSPort)
		}
		switch {
		case static && (c.HTTPSCertFile == "" || c.HTTPSKeyFile == ""):
			return configErr("HTTPSKeyFile", "a static certificate needs both its certificate and its key file")
		case static && (c.ACMEDirectory != "" || c.ACMEEmail != ""):
			return configErr("ACMEDirectory", "a static certificate and ACME exclude each other: drop one")
		case !static && c.StateDir == "":
			_, err := statedir.Default()
			return cfgerr.Wrap("server", "StateDir", err)
		}
	}

	// TCP and UDP tunnels.
	if c.TCPPortMin < 0 || c.TCPPortMax > 65535 || c.TCPPortMin > c.TCPPortMax || (c.TCPPortMin == 0) != (c.TCPPortMax == 0) {
		return configErr("TCPPortMin", "TCP port range %d-%d is invalid: give MIN-MAX within 1-65535, or both zero for any port", c.TCPPortMin, c.TCPPortMax)
	}
	if c.UDPPortMin < 0 || c.UDPPortMax > 65535 || c.UDPPortMin > c.UDPPortMax || (c.UDPPortMin == 0) != (c.UDPPortMax == 0) {
		return configErr("UDPPortMin", "UDP port range %d-%d is invalid: give MIN-MAX within 1-65535, or both zero for any port", c.UDPPortMin, c.UDPPortMax)
	}
	if c.UDPIdleTimeout < 0 {
		return configErr("UDPIdleTimeout", "%v is negative: give a duration, or 0 for one minute", c.UDPIdleTimeout)
	}
	if c.UDPMaxFlows < 0 {
		return configErr("UDPMaxFlows", "%d is negative: give a number of flows, or 0 for %d", c.UDPMaxFlows, DefaultUDPMaxFlows)
	}
	if c.UDPFlowQueue < 0 {
		return configErr("UDPFlowQueue", "%d is negative: give a number of datagrams, or 0 for %d", c.UDPFlowQueue, DefaultUDPFlowQueue)
	}
	if c.UDPQueueBytes < 0 {
		return configErr("UDPQueueBytes", "%d is negative: give a number of bytes, or 0 for %d", c.UDPQueueBytes, DefaultUDPQueueBytes)
	}
	for _, p := range c.AcceptProxyProtocol {
		if !p.IsValid() {
			return configErr("AcceptProxyProtocol", "an entry is not a valid prefix: give CIDRs such as 10.0.0.0/8")
		}
	}

	// The admin view.
	if c.Admin != "" {
		if _, _, err := net.SplitHostPort(c.Admin); err != nil {
			return configErr("Admin", "%q: %v: write it as host:port, e.g. 127.0.0.1:7836", c.Admin, err)
		}
		if c.AdminToken == "" {
			return configErr("AdminToken", "the admin view needs a bearer token: it lists every agent's address")
		}
	}
	return nil
}
