package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/server"
)

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
