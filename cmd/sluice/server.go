package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/internal/statedir"
	"github.com/sluicehq/sluice/policy"
	"github.com/sluicehq/sluice/server"
	"github.com/sluicehq/sluice/transport"
)

func runServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	hup := notifyHangup()
	defer hup.stop()
	sc, err := parseServer(args, stderr)
	if err != nil {
		return err
	}
	c, cfg := sc.c, sc.cfg
	log, err := c.logger()
	if err != nil {
		return err
	}
	if err := c.maybeStartPprof(log); err != nil {
		return err
	}
	sc.memLimit.apply(log)
	trimCtx, stopTrim := context.WithCancel(ctx)
	trimDone := make(chan struct{})
	go func() {
		defer close(trimDone)
		returnIdleMemory(trimCtx, log)
	}()
	defer func() {
		stopTrim()
		<-trimDone
	}()
	cfg.Logger = log
	if err := cfg.Validate(); err != nil {
		return err // before a certificate is made and its pin printed
	}
	tlsCfg, err := serverTLS(cfg.Listen, sc.insecure, sc.certFile, sc.keyFile, sc.caFile, cfg.StateDir, stdout, log)
	if err != nil {
		return err
	}
	cfg.TLS = tlsCfg
	if err := sc.admin.apply(&cfg.Admin, &cfg.AdminToken, stdout); err != nil {
		return err
	}
	if sc.metricsAddr != "" {
		reg := newRegistry()
		cfg.Metrics = reg
		stop, err := startMetrics(sc.metricsAddr, reg, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	if a := srv.AdminAddr(); a != nil {
		fmt.Fprintf(stdout, "sluice edge: admin view on http://%s/ (console: sign in with the admin token; API: Authorization: Bearer TOKEN)\n", a)
	}
	fmt.Fprintf(stdout, "sluice edge: agents connect to %s", srv.Addr())
	if a := srv.HTTPAddr(); a != nil {
		fmt.Fprintf(stdout, ", HTTP tunnels on %s (*.%s)", a, cfg.Domain)
	}
	if a := srv.HTTPSAddr(); a != nil {
		fmt.Fprintf(stdout, ", HTTPS on %s", a)
	}
	fmt.Fprintln(stdout)
	go hup.each(ctx, func() { reloadServer(srv, args, log) })
	return srv.Serve(ctx)
}

// reloadServer re-reads the command line's config file, environment and
// tokens file and applies them; on error the old configuration stays.
func reloadServer(srv *server.Server, args []string, log *slog.Logger) {
	sc, err := parseServer(args, io.Discard)
	if err == nil {
		err = sc.cfg.Validate()
	}
	if err != nil {
		log.Error("reload failed: the old configuration stays", "err", explain(err))
		return
	}
	note, err := srv.Reload(sc.cfg)
	if err != nil {
		log.Error("reload failed: the old configuration stays", "err", err)
		return
	}
	if note != "" {
		log.Warn("reload: " + note)
	}
}

// serverCommand is the parsed command line of `sluice server`.
type serverCommand struct {
	c                         *command
	cfg                       server.Config
	insecure                  bool
	certFile, keyFile, caFile string
	metricsAddr               string
	admin                     adminFlags
	memLimit                  memoryLimit
}

// parseServer reads the flags, environment and config file of `sluice
// server` into a server.Config (without logger, TLS, metrics or admin). A
// reload runs it again.
func parseServer(args []string, stderr io.Writer) (*serverCommand, error) {
	c := newCommand("server", "server --listen ADDR --http ADDR --domain DOMAIN --token TOKEN [flags]", stderr)
	sc := &serverCommand{c: c}
	var (
		cfg        server.Config
		tokens     stringList
		tcpPorts   string
		tokensFile string
		hf         edgeHTTPSFlags
		l4         edgeL4Flags
	)
	fs := c.fs
	fs.StringVar(&cfg.Listen, "listen", ":7835", "`address` agents connect to")
	fs.StringVar(&cfg.HTTP, "http", "", "public HTTP ingress `address`, e.g. :80 (empty: no HTTP tunnels)")
	fs.StringVar(&cfg.Domain, "domain", "", "parent `domain` of tunnel hostnames: NAME.DOMAIN (point a wildcard DNS record *.DOMAIN at this host)")
	fs.Var(&tokens, "token", "`token` agents must present (repeat for several; in the file, a list)")
	fs.BoolVar(&sc.insecure, "insecure", false, "plain TCP between agents and this edge, no TLS (trusted networks and benchmarks only)")
	fs.StringVar(&sc.certFile, "tls-cert", "", "TLS certificate `file` (PEM) for the agent listener")
	fs.StringVar(&sc.keyFile, "tls-key", "", "TLS private key `file` (PEM)")
	fs.StringVar(&sc.caFile, "client-ca", "", "CA `file` (PEM): require agents to present a certificate it signed (mutual TLS)")
	fs.StringVar(&cfg.TCPHost, "tcp-host", "", "`address` TCP tunnels listen on (default: the host of --listen)")
	fs.StringVar(&tcpPorts, "tcp-ports", "", "`MIN-MAX` range for TCP tunnel ports (default: any requested port, else an ephemeral one)")
	fs.StringVar(&cfg.PublicHost, "public-host", "", "`host` shown in tcp:// URLs (default: --tcp-host, or --domain when that is a wildcard)")
	fs.IntVar(&cfg.PublicHTTPPort, "public-http-port", 0, "`port` shown in http:// URLs when a proxy forwards to --http (default: the --http port)")
	fs.Var(&sc.memLimit, "memory-limit", "soft limit on the edge's memory, e.g. 256MiB: the Go runtime collects harder near it and returns memory above it to the system (default: GOMEMLIMIT, else none)")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", server.DefaultDrainTimeout, "on SIGINT/SIGTERM, how long requests and connections in flight may finish before they are cut (the health check answers 503 meanwhile; a second signal exits at once)")
	fs.DurationVar(&cfg.ReadHeaderTimeout, "header-timeout", 10*time.Second, "how long a public HTTP client may take to send its headers")
	fs.DurationVar(&cfg.ReclaimGrace, "reclaim-grace", server.DefaultReclaimGrace, "how long a disconnected agent keeps its name or port (its lease): it gets the same URL back, random ones too (0: only while connected)")
	fs.StringVar(&tokensFile, "tokens-file", "", "YAML `file` of tokens with owners, allowed names and ports, tunnel limits and owners' policies (re-read on SIGHUP)")
	var policyFile string
	fs.StringVar(&policyFile, "policy", "", "traffic policy `file` for every tunnel (YAML rules with CEL conditions, see docs/POLICY.md); agents' rules cannot skip it")
	var fleetJoin string
	fs.StringVar(&cfg.FleetListen, "fleet-listen", "", "fleet `address` host:port: other edges of the fleet link here, and the embedded store's routes listen on the next port (empty: a single edge, no fleet)")
	fs.StringVar(&fleetJoin, "fleet-join", "", "fleet addresses `HOST:PORT,...` of the edges to cluster with; may list this edge too, so every edge takes the same list")
	fs.StringVar(&cfg.FleetSecret, "fleet-secret", "", "`secret` shared by every edge of the fleet: links and store routes use mutual TLS from it")
	fs.StringVar(&cfg.NATS, "nats", "", "keep the fleet's state in this NATS with JetStream, `nats://HOST:PORT` (instead of an embedded store; 2.11 or later)")
	fs.StringVar(&cfg.NATSCredsFile, "nats-creds", "", "NATS credentials `file` (JWT and seed) for --nats")
	fs.StringVar(&cfg.NATSCAFile, "nats-ca", "", "CA `file` (PEM) that signed the --nats servers' certificates")
	fs.StringVar(&cfg.NATSCertFile, "nats-cert", "", "client certificate `file` (PEM) for --nats servers that ask for one")
	fs.StringVar(&cfg.NATSKeyFile, "nats-key", "", "client key `file` (PEM) for --nats-cert")
	hf.register(fs, &cfg)
	l4.register(c)
	metricsFlag(c, &sc.metricsAddr)
	sc.admin.register(c)
	if _, err := c.parse(args); err != nil {
		return nil, err
	}
	if err := hf.apply(&cfg); err != nil {
		return nil, err
	}
	cfg.Tokens = tokens
	for _, j := range strings.Split(fleetJoin, ",") {
		if j = strings.TrimSpace(j); j != "" {
			cfg.FleetJoin = append(cfg.FleetJoin, j)
		}
	}
	if tokensFile != "" {
		rules, err := server.LoadTokensFile(tokensFile)
		if err != nil {
			return nil, usagef("server: --tokens-file: %v", err)
		}
		cfg.TokenRules = rules
		cfg.TokensFile = tokensFile
	}
	if policyFile != "" {
		spec, err := policy.Load(policyFile)
		if err != nil {
			return nil, usagef("server: --policy: %v", err)
		}
		cfg.Policy = spec
	}
	if cfg.StateDir == "" {
		// Leases and the loopback certificate outlive the process here
		// unless the operator names another place.
		cfg.StateDir, _ = statedir.Default()
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = -1 // server.Config: negative cuts at once
	}
	if cfg.ReclaimGrace == 0 {
		cfg.ReclaimGrace = -1 // server.Config: negative keeps nothing past the session
	}
	if tcpPorts != "" {
		lo, hi, ok := strings.Cut(tcpPorts, "-")
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if !ok || err1 != nil || err2 != nil {
			return nil, usagef("server: --tcp-ports %q: write MIN-MAX, e.g. 20000-20999", tcpPorts)
		}
		cfg.TCPPortMin, cfg.TCPPortMax = a, b
	}
	if err := l4.apply(&cfg); err != nil {
		return nil, err
	}
	sc.cfg = cfg
	return sc, nil
}

// serverTLS decides how agents connect: plain TCP with --insecure; TLS with
// the given certificate; with none, a throwaway certificate on loopback (its
// pin is printed for agents to pass) and a refusal anywhere else.
func serverTLS(listen string, insecure bool, certFile, keyFile, caFile, stateDir string, stdout io.Writer, log interface{ Warn(string, ...any) }) (*tls.Config, error) {
	if insecure {
		if certFile != "" || keyFile != "" {
			return nil, usagef("server: --insecure and --tls-cert/--tls-key contradict each other: drop one")
		}
		if !isLoopback(listen) {
			log.Warn("agents connect over plain TCP on a non-loopback address: tokens and traffic travel unencrypted", "listen", listen)
		}
		return nil, nil
	}
	if certFile != "" || keyFile != "" {
		if certFile == "" || keyFile == "" {
			return nil, usagef("server: give both --tls-cert and --tls-key")
		}
		cfg, err := transport.ServerTLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile}.Config()
		if err != nil {
			return nil, usagef("server: %v", err)
		}
		return cfg, nil
	}
	if !isLoopback(listen) {
		return nil, usagef("server: refusing to listen on %s without TLS: pass --tls-cert and --tls-key (a certificate for this edge's name, e.g. from Let's Encrypt), or --insecure for plain TCP on a network you trust", listen)
	}
	cert, where, err := loopbackCert(stateDir, log)
	if err != nil {
		return nil, err
	}
	pin := transport.Pin(cert.Leaf)
	fmt.Fprintf(stdout, "sluice edge: no --tls-cert given, so this loopback edge uses a generated certificate (%s); agents pass --pin %s\n", where, pin)
	return transport.ServerTLS{Certificate: &cert, ClientCAFile: caFile}.Config()
}

// isLoopback reports whether a listen address binds only loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
