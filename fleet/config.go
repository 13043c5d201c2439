package fleet

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/internal/cfgerr"
)

// Config describes one edge's place in a fleet. Every duration has a
// default; Listen and Secret are required, and either Join (the embedded
// store) or NATS (an operator's NATS) says where the shared state lives.
type Config struct {
	// Name names this edge for people (status pages, logs). Default: the
	// host name.
	Name string
	// Listen is the fleet address, "host:port": other edges open
	// edge-to-edge links here. The embedded store's routes listen on the
	// next port (port+1) of the same host.
	Listen string
	// Advertise is the address other edges dial for links to this one.
	// Default: Listen, or the host name with Listen's port when Listen's
	// host is unspecified ("0.0.0.0:7100", ":7100").
	Advertise string
	// Join lists the fleet addresses of the edges whose embedded store
	// nodes this one clusters with. It may include this edge's own
	// address, so every edge can be given the same list.
	Join []string
	// Secret authenticates edges to each other: the links and the store's
	// routes use mutual TLS with certificates signed by a CA derived from
	// it, so only holders of the secret can take part.
	Secret string
	// NATS, when set, is the URL (or comma-separated URLs) of an existing
	// NATS server or cluster with JetStream; no embedded node is started
	// and Join is not used.
	NATS string
	// NATSCredsFile is a NATS credentials file (JWT and seed) for NATS.
	NATSCredsFile string
	// NATSCAFile, NATSCertFile and NATSKeyFile configure TLS to NATS: the
	// CA bundle that signed the servers' certificates, and a client
	// certificate when the servers ask for one.
	NATSCAFile, NATSCertFile, NATSKeyFile string
	// StateDir is where the embedded node keeps its JetStream data (in
	// StateDir/fleet). Required for the embedded store.
	StateDir string
	// Replicas is how many copies of each lease the store keeps. Default:
	// 3, or the number of edges in Join (this one included) when fewer;
	// with NATS, 3 or 1 when the server is not clustered.
	Replicas int
	// StartTimeout bounds how long Open waits for the store to answer; a
	// fleet's embedded store answers once a majority of its nodes run.
	// Default 30s.
	StartTimeout time.Duration
	// OpTimeout bounds one store operation. Default 5s (a JetStream leader
	// election after a node is lost takes a few seconds).
	OpTimeout time.Duration
	// Heartbeat is how often this edge renews its membership; EdgeTTL is
	// how long the membership outlives the last renewal, so an edge that
	// dies is forgotten (and what only it held released) after about
	// EdgeTTL. Defaults 1s and 10s: the TTL outlasts the leader election
	// that follows the loss of a store node (several seconds), during which
	// no edge can renew, so live edges are not forgotten meanwhile. EdgeTTL
	// is whole seconds (the store's per-key expiry counts in seconds).
	Heartbeat, EdgeTTL time.Duration
	// Info is published with this edge's membership, for the other edges
	// and the agents that ask (e.g. the address agents dial).
	Info map[string]string
	// OnEvent, when set, is called for every change to the fleet's leases
	// and members, in order, from one goroutine. It must not block long:
	// later events wait behind it.
	OnEvent func(Event)
	// Logger receives the store's warnings. Default slog.Default().
	Logger *slog.Logger
}

// The defaults, field by field.
const (
	DefaultStartTimeout = 30 * time.Second
	DefaultOpTimeout    = 5 * time.Second
	DefaultHeartbeat    = time.Second
	DefaultEdgeTTL      = 10 * time.Second
	// MaxReplicas is the replica count of a fleet of three or more edges:
	// three copies survive the loss of any one store node.
	MaxReplicas = 3
)

// ConfigError names the Config field that is wrong (Pkg is "fleet").
type ConfigError = cfgerr.Error

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name, _ = os.Hostname()
	}
	if c.Advertise == "" && c.Listen != "" {
		c.Advertise = c.Listen
		if host, port, err := net.SplitHostPort(c.Listen); err == nil {
			if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
				h, _ := os.Hostname()
				c.Advertise = net.JoinHostPort(h, port)
			}
		}
	}
	// With an external NATS, zero stays: the store tries three replicas
	// and takes one on a server that is not clustered.
	if c.Replicas == 0 && c.NATS == "" {
		c.Replicas = min(MaxReplicas, len(edgeSet(c.Listen, c.Join)))
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = DefaultOpTimeout
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.EdgeTTL == 0 {
		c.EdgeTTL = DefaultEdgeTTL
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate checks a Config with its defaults filled in.
func (c Config) validate() error {
	if c.Secret == "" {
		return cfgerr.New("fleet", "Secret", "a fleet needs a shared secret so that edges can tell each other from strangers; give every edge the same long random string")
	}
	if len(c.Secret) < 16 {
		return cfgerr.New("fleet", "Secret", "the secret is %d characters; use at least 16 (e.g. the output of `openssl rand -hex 32`)", len(c.Secret))
	}
	if err := checkHostPort(c.Listen, true); err != nil {
		return cfgerr.Wrap("fleet", "Listen", err)
	}
	if err := checkHostPort(c.Advertise, false); err != nil {
		return cfgerr.Wrap("fleet", "Advertise", err)
	}
	if c.NATS == "" {
		for i, j := range c.Join {
			if err := checkHostPort(j, false); err != nil {
				return cfgerr.Wrap("fleet", "Join["+strconv.Itoa(i)+"]", err)
			}
		}
		if c.StateDir == "" {
			return cfgerr.New("fleet", "StateDir", "the embedded store needs a state directory for its data")
		}
	} else if len(c.Join) > 0 {
		return cfgerr.New("fleet", "Join", "joining edges' embedded stores and using an external NATS are exclusive; give one or the other")
	}
	if c.Replicas < 0 || c.Replicas > 5 || (c.Replicas == 0 && c.NATS == "") {
		return cfgerr.New("fleet", "Replicas", "%d replicas: JetStream keeps 1 to 5", c.Replicas)
	}
	if c.Heartbeat <= 0 || c.EdgeTTL < 2*c.Heartbeat || c.EdgeTTL%time.Second != 0 {
		return cfgerr.New("fleet", "EdgeTTL", "%s with a heartbeat of %s: the TTL must be whole seconds and at least two heartbeats", c.EdgeTTL, c.Heartbeat)
	}
	if c.StartTimeout <= 0 {
		return cfgerr.New("fleet", "StartTimeout", "must be positive")
	}
	if c.OpTimeout <= 0 {
		return cfgerr.New("fleet", "OpTimeout", "must be positive")
	}
	return nil
}

func checkHostPort(addr string, local bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (%v)", addr, err)
	}
	p, err := strconv.Atoi(port)
	// The route port is port+1, so the fleet port stops one short.
	if err != nil || p < 1 || p > 65534 {
		return fmt.Errorf("%q: the port must be a number from 1 to 65534 (the store's routes use the next one)", addr)
	}
	if !local && host == "" {
		return fmt.Errorf("%q has no host; other edges must be able to dial it", addr)
	}
	return nil
}

// edgeSet is the distinct fleet addresses of the edges: this one and those
// it joins (which may include itself).
func edgeSet(self string, join []string) map[string]bool {
	set := map[string]bool{}
	if self != "" {
		set[self] = true
	}
	for _, j := range join {
		set[j] = true
	}
	// This edge listed in Join under another spelling (0.0.0.0:7100 and
	// edge1:7100) counts once when the ports match and the host is ours.
	if host, port, err := net.SplitHostPort(self); err == nil {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			for _, j := range join {
				if jh, jp, err := net.SplitHostPort(j); err == nil && jp == port && isLocalHost(jh) {
					delete(set, self)
					break
				}
			}
		}
	}
	return set
}

func isLocalHost(host string) bool {
	if h, _ := os.Hostname(); h == host {
		return true
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return false
	}
	addrs, _ := net.InterfaceAddrs()
	for _, ip := range ips {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return true
			}
		}
	}
	return false
}

// routePort is the port of the embedded store's routes beside a fleet
// address.
func routeAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(p+1)), nil
}
