package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strconv"
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
	server, token           string
	insecure                bool
	caFile, pin, serverName string
	certFile, keyFile       string
	connectTimeout          time.Duration
	pool, takeover          bool
}

func (f *agentFlags) register(c *command) {
	fs := c.fs
	fs.StringVar(&f.server, "server", "", "edge `address` host:port (env SLUICE_SERVER)")
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
}

func (f *agentFlags) config(c *command) (agent.Config, error) {
	log, err := c.logger()
	if err != nil {
		return agent.Config{}, err
	}
	if err := c.maybeStartPprof(log); err != nil {
		return agent.Config{}, err
	}
	if f.server == "" {
		return agent.Config{}, usagef("%s: no edge address: pass --server host:port or set SLUICE_SERVER", c.name)
	}
	if f.token == "" {
		return agent.Config{}, usagef("%s: no token: pass --token or set SLUICE_TOKEN to the edge's token", c.name)
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
	return agent.Config{Server: f.server, Token: f.token, TLS: tlsCfg, Logger: log, FirstConnectTimeout: ct}, nil
}

// localAddr turns "3000" into "localhost:3000" and checks host:port forms.
func localAddr(s string) (string, error) {
	if p, err := strconv.Atoi(s); err == nil {
		if p < 1 || p > 65535 {
			return "", fmt.Errorf("port %d is out of range 1-65535", p)
		}
		return "localhost:" + s, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("local service %q: give a port (3000) or host:port (127.0.0.1:3000)", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("local service %q: port %q is not a number in 1-65535", s, port)
	}
	if host == "" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port), nil
}

// runTunnel is `sluice http` and `sluice tcp`: one tunnel from flags.
func runTunnel(ctx context.Context, kind control.Kind, args []string, stdout, stderr io.Writer) error {
	name := string(kind)
	synopsis := "http PORT|HOST:PORT --server ADDR --token TOKEN [--name NAME] [flags]"
	if kind == control.KindTCP {
		synopsis = "tcp HOST:PORT --server ADDR --token TOKEN [--remote-port N] [flags]"
	}
	c := newCommand(name, synopsis, stderr)
	var af agentFlags
	af.register(c)
	var t agent.Tunnel
	t.Kind = kind
	if kind == control.KindHTTP {
		c.fs.StringVar(&t.Name, "name", "", "subdomain `name` to ask for (default: a random readable one)")
		c.fs.StringVar(&t.Hostname, "hostname", "", "exact `host` to route here instead of NAME.DOMAIN")
		c.fs.BoolVar(&t.LogRequests, "log-requests", true, "log one line per request (parses HTTP on the agent; false pipes bytes untouched, faster)")
	} else {
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
	if t.Local, err = localAddr(pos[0]); err != nil {
		return usagef("%s: %v", name, err)
	}
	cfg, err := af.config(c)
	if err != nil {
		return err
	}
	t.Pool, t.Takeover = af.pool, af.takeover
	cfg.Tunnels = []agent.Tunnel{t}
	return runAgent(ctx, cfg, stdout)
}

// runAgent runs an agent, printing each tunnel's public address as soon as
// it is live (and again if a reconnect changed it).
func runAgent(ctx context.Context, cfg agent.Config, stdout io.Writer) error {
	var mu sync.Mutex
	last := map[int]string{}
	cfg.OnAssigned = func(i int, a control.Assigned) {
		mu.Lock()
		defer mu.Unlock()
		if last[i] == a.URL {
			return
		}
		last[i] = a.URL
		fmt.Fprintf(stdout, "Forwarding %s -> %s\n", a.URL, cfg.Tunnels[i].Local)
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
}

// runStart is `sluice start -c FILE`: every tunnel of the file on one session.
func runStart(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCommand("start", "start -c sluice.yml [flags]", stderr)
	c.extraKeys = []string{"tunnels"}
	var af agentFlags
	af.register(c)
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("start: unexpected arguments %q: tunnels come from the config file", pos)
	}
	if c.config == "" {
		return usagef("start: give the config file with -c sluice.yml (or SLUICE_CONFIG)")
	}
	raw, ok := c.file["tunnels"]
	if !ok {
		return usagef("start: %s has no tunnels: list; see the README's config reference", c.config)
	}
	// Round-trip through YAML to decode the list strictly into tunnelSpec.
	b, _ := yaml.Marshal(raw)
	var specs []tunnelSpec
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&specs); err != nil {
		return usagef("start: %s: tunnels: %v (each entry takes type, local, name, hostname, remote_port, pool)", c.config, err)
	}
	if len(specs) == 0 {
		return usagef("start: %s: the tunnels list is empty", c.config)
	}
	cfg, err := af.config(c)
	if err != nil {
		return err
	}
	for i, s := range specs {
		t := agent.Tunnel{Kind: control.Kind(s.Type), Name: s.Name, Hostname: s.Hostname, RemotePort: s.RemotePort, Pool: s.Pool || af.pool, Takeover: af.takeover}
		switch t.Kind {
		case control.KindHTTP:
			t.LogRequests = true
		case control.KindTCP:
		default:
			return usagef("start: %s: tunnel %d: type %q: use http or tcp", c.config, i+1, s.Type)
		}
		if t.Local, err = localAddr(s.Local); err != nil {
			return usagef("start: %s: tunnel %d: %v", c.config, i+1, err)
		}
		cfg.Tunnels = append(cfg.Tunnels, t)
	}
	return runAgent(ctx, cfg, stdout)
}
