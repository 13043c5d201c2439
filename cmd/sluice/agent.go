package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/transport"
)

// agentFlags are the flags every agent command shares.
type agentFlags struct {
	servers                 serverList
	sessions                int
	token                   string
	insecure                bool
	caFile, pin, serverName string
	certFile, keyFile       string
	connectTimeout          time.Duration
	pool, takeover          bool
	metrics                 string
}

func (f *agentFlags) register(c *command) {
	fs := c.fs
	fs.Var(&f.servers, "server", "edge `address` host:port (env SLUICE_SERVER); several edges of a fleet: repeat it or give HOST:PORT,HOST:PORT")
	fs.IntVar(&f.sessions, "sessions", agent.DefaultSessions, "keep sessions to this many edges of a fleet at once (the edges say who the others are; 1: one session)")
	fs.StringVar(&f.token, "token", "", "the edge's `token` (env SLUICE_TOKEN)")
	fs.BoolVar(&f.insecure, "insecure", false, "plain TCP to the edge, no TLS (the edge must run with --insecure too)")
	fs.StringVar(&f.caFile, "ca", "", "CA `file` (PEM) that signed the edge's certificate (default: the system's roots)")
	fs.StringVar(&f.pin, "pin", "", "SHA-256 `pin` of the edge's public key, as printed by sluice server")
	fs.StringVar(&f.serverName, "server-name", "", "TLS `name` to verify in the edge's certificate (default: the host of --server)")
	fs.StringVar(&f.certFile, "tls-cert", "", "client certificate `file` (PEM), when the edge requires mutual TLS")
	fs.StringVar(&f.keyFile, "tls-key", "", "client private key `file` (PEM)")
	fs.DurationVar(&f.connectTimeout, "connect-timeout", 5*time.Second, "give up when the first connection to the edge fails for this long (0: retry forever)")
	fs.BoolVar(&c.verbose, "v", false, "verbose: log every connection (same as --log-level debug)")
	fs.BoolVar(&f.pool, "pool", false, "share the name or port with other agents of the same owner that pass --pool too (the edge spreads connections across them)")
	fs.BoolVar(&f.takeover, "takeover", false, "replace an agent of the same owner that holds the name or port but is stuck; it is told and exits 5")
	metricsFlag(c, &f.metrics)
}

func (f *agentFlags) config(c *command) (agent.Config, error) {
	log, err := c.logger()
	if err != nil {
		return agent.Config{}, err
	}
	if err := c.maybeStartPprof(log); err != nil {
		return agent.Config{}, err
	}
	var tlsCfg *tls.Config
	if f.insecure {
		if f.caFile != "" || f.pin != "" {
			return agent.Config{}, usagef("%s: --insecure turns TLS off, so --ca and --pin mean nothing: drop one or the other", c.name)
		}
	} else {
		tlsCfg, err = transport.ClientTLS{ServerName: f.serverName, CAFile: f.caFile, Pin: f.pin, CertFile: f.certFile, KeyFile: f.keyFile}.Config()
		if err != nil {
			return agent.Config{}, usagef("%s: %v", c.name, err)
		}
	}
	ct := f.connectTimeout
	if ct == 0 {
		ct = -1 // agent.Config: negative retries forever
	}
	if f.sessions < 1 || f.sessions > agent.MaxSessions {
		return agent.Config{}, usagef("%s: --sessions %d: give 1 to %d", c.name, f.sessions, agent.MaxSessions)
	}
	cfg := agent.Config{Token: f.token, TLS: tlsCfg, Logger: log, FirstConnectTimeout: ct, Sessions: f.sessions}
	if len(f.servers) > 0 {
		cfg.Server, cfg.Servers = f.servers[0], f.servers[1:]
	}
	return cfg, nil
}

// serverList is --server: one edge address, or several, repeated or
// separated by commas.
type serverList []string

func (l *serverList) String() string { return strings.Join(*l, ",") }

func (l *serverList) Set(v string) error {
	for _, a := range strings.Split(v, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			return fmt.Errorf("an empty edge address in %q: give HOST:PORT, or several separated by commas", v)
		}
		*l = append(*l, a)
	}
	return nil
}

// localAddr turns "3000" into "localhost:3000" and checks host:port forms
// by the agent's own rule.
func localAddr(s string) (string, error) { return agent.LocalAddr(s) }

// runTunnel is `sluice http`, `sluice tcp` and `sluice udp`: one tunnel
// from flags.
func runTunnel(ctx context.Context, kind control.Kind, args []string, stdout, stderr io.Writer) error {
	name := string(kind)
	synopsis := "http PORT|HOST:PORT|https://HOST:PORT --server ADDR --token TOKEN [--name NAME] [flags]"
	switch kind {
	case control.KindTCP:
		synopsis = "tcp HOST:PORT --server ADDR --token TOKEN [--remote-port N] [flags]"
	case control.KindUDP:
		synopsis = "udp HOST:PORT --server ADDR --token TOKEN [--remote-port N] [flags]"
	}
	c := newCommand(name, synopsis, stderr)
	var af agentFlags
	af.register(c)
	var inf *inspectFlags
	if kind == control.KindHTTP {
		inf = &inspectFlags{}
		inf.register(c)
	}
	var t agent.Tunnel
	var uf upstreamFlags
	var pf policyFlags
	pf.register(c.fs, kind == control.KindHTTP)
	t.Kind = kind
	if kind == control.KindHTTP {
		uf.register(c.fs, &t)
		c.fs.StringVar(&t.Name, "name", "", "subdomain `name` to ask for (default: a random readable one)")
		c.fs.StringVar(&t.Hostname, "hostname", "", "exact `host` to route here instead of NAME.DOMAIN")
		c.fs.BoolVar(&t.LogRequests, "log-requests", true, "log one line per request (parses HTTP on the agent; false, with --inspect=false, pipes bytes untouched, faster)")
		c.fs.StringVar(&t.ProxyProtocol, "proxy-protocol", "", "send a PROXY protocol header `v1|v2` naming the public client to the local service (needs --log-requests=false)")
	} else {
		if kind == control.KindTCP {
			c.fs.StringVar(&t.ProxyProtocol, "proxy-protocol", "", "send a PROXY protocol header `v1|v2` naming the public client to the local service")
		}
		c.fs.IntVar(&t.RemotePort, "remote-port", 0, "public `port` to ask the edge for (default: the edge picks one)")
		c.fs.StringVar(&t.Name, "name", "", "a `label` for the tunnel in the edge's logs")
	}
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		c.fs.Usage()
		return usagef("%s: give exactly one local service (got %d arguments: %q)", name, len(pos), pos)
	}
	if kind == control.KindHTTP {
		err = uf.apply(pos[0], &t)
	} else {
		t.Local, err = localAddr(pos[0])
	}
	if err != nil {
		return usagef("%s: %v", name, err)
	}
	if err := proxyProtocolFlag(name, &t); err != nil {
		return err
	}
	if t.Policy, err = policySpec(pf.simple(), string(kind), false); err != nil {
		return err
	}
	cfg, err := af.config(c)
	if err != nil {
		return err
	}
	t.Pool, t.Takeover = af.pool, af.takeover
	cfg.Tunnels = []agent.Tunnel{t}
	stop, err := observeAgent(&cfg, af.metrics, inf, cfg.Logger, stdout)
	defer stop()
	if err != nil {
		return err
	}
	return runAgent(ctx, cfg, stdout)
}

// runAgent runs an agent, printing each tunnel's public address as soon as
// it is live (and again if a reconnect changed it).
func runAgent(ctx context.Context, cfg agent.Config, stdout io.Writer) error {
	var mu sync.Mutex
	last := map[int]string{}
	then := cfg.OnAssigned // e.g. the inspector's line, printed after
	cfg.OnAssigned = func(i int, a control.Assigned) {
		mu.Lock()
		defer mu.Unlock()
		if last[i] == a.URL {
			return
		}
		last[i] = a.URL
		fmt.Fprintf(stdout, "Forwarding %s -> %s\n", a.URL, cfg.Tunnels[i].Local)
		if then != nil {
			then(i, a)
		}
	}
	a, err := agent.New(cfg)
	if err != nil {
		return usageError{err}
	}
	return a.Run(ctx)
}

// tunnelSpec is one entry of the tunnels list in a `sluice start` file.
type tunnelSpec struct {
	Type       string `yaml:"type"`
	Local      string `yaml:"local"`
	Name       string `yaml:"name"`
	Hostname   string `yaml:"hostname"`
	RemotePort int    `yaml:"remote_port"`
	Pool       bool   `yaml:"pool"`
	// HTTP only; the same as the flags of sluice http.
	UpstreamProtocol string `yaml:"upstream_protocol"`
	HostHeader       string `yaml:"host_header"`
	// ProxyProtocol is v1 or v2 (tcp tunnels, and http with log_requests false).
	ProxyProtocol string `yaml:"proxy_protocol"`
	// LogRequests defaults to true for http tunnels.
	LogRequests *bool `yaml:"log_requests"`

	// The traffic policy, as the flags of sluice http/tcp/udp name it.
	BasicAuth            []string `yaml:"basic_auth"`
	OIDCIssuer           string   `yaml:"oidc_issuer"`
	OIDCClientID         string   `yaml:"oidc_client_id"`
	OIDCClientSecret     string   `yaml:"oidc_client_secret"`
	OIDCAllowEmail       []string `yaml:"oidc_allow_email"`
	OIDCAllowDomain      []string `yaml:"oidc_allow_domain"`
	AllowCIDR            []string `yaml:"allow_cidr"`
	DenyCIDR             []string `yaml:"deny_cidr"`
	RateLimit            string   `yaml:"rate_limit"`
	VerifyWebhook        []string `yaml:"verify_webhook"`
	RequestHeaderAdd     []string `yaml:"request_header_add"`
	RequestHeaderRemove  []string `yaml:"request_header_remove"`
	ResponseHeaderAdd    []string `yaml:"response_header_add"`
	ResponseHeaderRemove []string `yaml:"response_header_remove"`
	// Policy is a policy file, relative to the config file.
	Policy string `yaml:"policy"`
}

// runStart is `sluice start -c FILE`: every tunnel of the file, each on a
// session of its own so that a reload (SIGHUP, or the file changing) adds
// and removes tunnels without touching the others.
func runStart(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	hup := notifyHangup()
	defer hup.stop()
	c, af, inf, tunnels, err := parseStart(args, stderr)
	if err != nil {
		return err
	}
	cfg, err := af.config(c)
	if err != nil {
		return err
	}
	cfg.Tunnels = tunnels
	stop, err := observeAgent(&cfg, af.metrics, inf, cfg.Logger, stdout)
	defer stop()
	if err != nil {
		return err
	}
	reload := func() ([]agent.Tunnel, error) {
		_, _, _, t, err := parseStart(args, io.Discard)
		return t, err
	}
	return superviseStart(ctx, cfg, reload, hup, c.config, stdout)
}

// parseStart reads the command line and the tunnels of the config file.
func parseStart(args []string, stderr io.Writer) (*command, *agentFlags, *inspectFlags, []agent.Tunnel, error) {
	c := newCommand("start", "start -c sluice.yml [flags]", stderr)
	c.extraKeys = []string{"tunnels"}
	var af agentFlags
	af.register(c)
	var inf inspectFlags
	inf.register(c)
	pos, err := c.parse(args)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if len(pos) != 0 {
		return nil, nil, nil, nil, usagef("start: unexpected arguments %q: tunnels come from the config file", pos)
	}
	if c.config == "" {
		return nil, nil, nil, nil, usagef("start: give the config file with -c sluice.yml (or SLUICE_CONFIG)")
	}
	tunnels, err := startTunnels(c, &af)
	return c, &af, &inf, tunnels, err
}

// startTunnels decodes the tunnels list of the config file.
func startTunnels(c *command, af *agentFlags) ([]agent.Tunnel, error) {
	raw, ok := c.file["tunnels"]
	if !ok {
		return nil, usagef("start: %s has no tunnels: list; see the README's config reference", c.config)
	}
	// Round-trip through YAML to decode the list strictly into tunnelSpec.
	b, _ := yaml.Marshal(raw)
	var specs []tunnelSpec
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&specs); err != nil {
		return nil, usagef("start: %s: tunnels: %v (each entry takes type, local, name, hostname, remote_port, pool, upstream_protocol, host_header, proxy_protocol, log_requests, and the policy keys: basic_auth, oidc_issuer, oidc_client_id, oidc_client_secret, oidc_allow_email, oidc_allow_domain, allow_cidr, deny_cidr, rate_limit, verify_webhook, request_header_add, request_header_remove, response_header_add, response_header_remove, policy)", c.config, err)
	}
	if len(specs) == 0 {
		return nil, usagef("start: %s: the tunnels list is empty", c.config)
	}
	var tunnels []agent.Tunnel
	for i, s := range specs {
		t := agent.Tunnel{Kind: control.Kind(s.Type), Name: s.Name, Hostname: s.Hostname, RemotePort: s.RemotePort, UpstreamProtocol: s.UpstreamProtocol, HostHeader: s.HostHeader, ProxyProtocol: s.ProxyProtocol, Pool: s.Pool || af.pool, Takeover: af.takeover}
		switch t.Kind {
		case control.KindHTTP:
			t.LogRequests = s.LogRequests == nil || *s.LogRequests
		case control.KindTCP, control.KindUDP:
		default:
			return nil, usagef("start: %s: tunnel %d: type %q: use http, tcp or udp", c.config, i+1, s.Type)
		}
		if s.LogRequests != nil && t.Kind != control.KindHTTP {
			return nil, usagef("start: %s: tunnel %d: log_requests is for http tunnels", c.config, i+1)
		}
		if t.ProxyProtocol != "" && t.Kind == control.KindUDP {
			return nil, usagef("start: %s: tunnel %d: proxy_protocol is for tcp and http tunnels, not udp", c.config, i+1)
		}
		if err := proxyProtocolFlag(fmt.Sprintf("start: %s: tunnel %d", c.config, i+1), &t); err != nil {
			return nil, err
		}
		var err error
		if t.Local, err = localAddr(s.Local); err != nil {
			return nil, usagef("start: %s: tunnel %d: %v", c.config, i+1, err)
		}
		if t.Policy, err = policySpec(startPolicy(s, c.config), string(t.Kind), true); err != nil {
			return nil, usagef("start: %s: tunnel %d: %v", c.config, i+1, err)
		}
		tunnels = append(tunnels, t)
	}
	return tunnels, nil
}
