package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/server"
)

// runUDP is `sluice udp HOST:PORT`: one UDP tunnel from flags.
func runUDP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCommand("udp", "udp HOST:PORT --server ADDR --token TOKEN [--remote-port N] [flags]", stderr)
	var af agentFlags
	af.register(c)
	t := agent.Tunnel{Kind: control.KindUDP}
	c.fs.IntVar(&t.RemotePort, "remote-port", 0, "public UDP `port` to ask the edge for (default: the edge picks one)")
	c.fs.StringVar(&t.Name, "name", "", "a `label` for the tunnel in the edge's logs")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		c.fs.Usage()
		return usagef("udp: give exactly one local service (got %d arguments: %q)", len(pos), pos)
	}
	if t.Local, err = localAddr(pos[0]); err != nil {
		return usagef("udp: %v", err)
	}
	if t.RemotePort < 0 || t.RemotePort > 65535 {
		return usagef("udp: --remote-port %d is out of range 1-65535", t.RemotePort)
	}
	cfg, err := af.config(c)
	if err != nil {
		return err
	}
	cfg.Tunnels = []agent.Tunnel{t}
	stop, err := observeAgent(&cfg, af.metrics, nil, cfg.Logger, stdout)
	defer stop()
	if err != nil {
		return err
	}
	return runAgent(ctx, cfg, stdout)
}

// proxyProtocolFlag checks --proxy-protocol of `sluice tcp` and `sluice
// http` (empty: off).
func proxyProtocolFlag(cmd string, t *agent.Tunnel) error {
	switch t.ProxyProtocol {
	case "":
		return nil
	case "v1", "v2":
	default:
		return usagef("%s: --proxy-protocol %q: use v1 or v2", cmd, t.ProxyProtocol)
	}
	if t.Kind == control.KindHTTP && t.LogRequests {
		return usagef("%s: --proxy-protocol needs --log-requests=false (log_requests: false in a file): the header starts the byte stream to your service, which only a tunnel that pipes bytes keeps intact", cmd)
	}
	return nil
}

// edgeL4Flags are the edge's UDP and PROXY protocol flags.
type edgeL4Flags struct {
	udpPorts    string
	acceptProxy string
}

func (f *edgeL4Flags) register(c *command) {
	c.fs.StringVar(&f.udpPorts, "udp-ports", "", "`MIN-MAX` range for UDP tunnel ports (default: any requested port, else an ephemeral one)")
	c.fs.StringVar(&f.acceptProxy, "accept-proxy-protocol", "", "`CIDR,...` of load balancers in front of this edge: their connections must start with a PROXY protocol header (v1 or v2) naming the client; a header from anyone else is refused")
}

func (f *edgeL4Flags) apply(cfg *server.Config) error {
	if f.udpPorts != "" {
		lo, hi, ok := parsePortRange(f.udpPorts)
		if !ok {
			return usagef("server: --udp-ports %q: write MIN-MAX, e.g. 30000-30999", f.udpPorts)
		}
		cfg.UDPPortMin, cfg.UDPPortMax = lo, hi
	}
	if f.acceptProxy != "" {
		prefixes, err := parsePrefixes(f.acceptProxy)
		if err != nil {
			return usagef("server: --accept-proxy-protocol: %v", err)
		}
		cfg.AcceptProxyProtocol = prefixes
	}
	return nil
}

func parsePortRange(s string) (lo, hi int, ok bool) {
	a, b, found := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	return lo, hi, found && err1 == nil && err2 == nil && lo >= 1 && hi <= 65535 && lo <= hi
}

// parsePrefixes reads "10.0.0.0/8,192.0.2.7,2001:db8::/32": a bare address
// stands for itself alone.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if p, err := netip.ParsePrefix(item); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR (10.0.0.0/8) nor an address (192.0.2.7)", item)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q lists no address", s)
	}
	return out, nil
}
