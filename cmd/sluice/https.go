package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strings"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/server"
)

// edgeHTTPSFlags are the public HTTPS and forwarding flags of sluice server.
type edgeHTTPSFlags struct {
	trusted  string
	acmeRoot string
}

// caPool adds the PEM certificates of the file at path to pool; flag names
// the flag that gave the path, for errors.
func caPool(flag, path string, pool *x509.CertPool) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", flag, err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", flag, path)
	}
	return pool, nil
}

func (f *edgeHTTPSFlags) register(fs *flag.FlagSet, cfg *server.Config) {
	fs.StringVar(&cfg.HTTPS, "https", "", "public HTTPS ingress `address`, e.g. :443 (certificates over ACME unless --https-cert is given)")
	fs.StringVar(&cfg.StateDir, "state-dir", "", "`directory` for state kept across restarts: leases, the loopback certificate, ACME certificates, the key of sign-in sessions (default: $XDG_STATE_HOME/sluice or ~/.local/state/sluice)")
	fs.StringVar(&cfg.ACMEDirectory, "acme-ca", "", "ACME directory `URL` (default: Let's Encrypt production)")
	fs.StringVar(&f.acmeRoot, "acme-ca-root", "", "CA `file` (PEM) to trust, besides the system's, for the ACME directory's HTTPS: a private ACME CA (step-ca, Pebble)")
	fs.StringVar(&cfg.ACMEEmail, "acme-email", "", "contact `email` for the ACME account (expiry and policy notices)")
	fs.StringVar(&cfg.HTTPSCertFile, "https-cert", "", "static certificate `file` (PEM) for --https, e.g. a wildcard for *.DOMAIN, instead of ACME")
	fs.StringVar(&cfg.HTTPSKeyFile, "https-key", "", "private key `file` (PEM) of --https-cert")
	fs.BoolVar(&cfg.HTTPPlain, "http-plain", false, "with --https, keep serving tunnels on --http instead of redirecting to HTTPS")
	fs.StringVar(&f.trusted, "trusted-proxies", "", "`CIDR,...` of proxies in front of the edge whose X-Forwarded-*/Forwarded headers are extended instead of replaced")
}

func (f *edgeHTTPSFlags) apply(cfg *server.Config) error {
	if f.acmeRoot != "" {
		if cfg.HTTPS == "" || cfg.HTTPSCertFile != "" {
			return usagef("server: --acme-ca-root trusts the CA of ACME certificates for --https: add --https, or drop it with --https-cert")
		}
		system, err := x509.SystemCertPool()
		if err != nil {
			system = x509.NewCertPool()
		}
		pool, err := caPool("--acme-ca-root", f.acmeRoot, system)
		if err != nil {
			return usageError{fmt.Errorf("server: %w", err)}
		}
		cfg.ACMERoots = pool
	}
	if f.trusted == "" {
		return nil
	}
	for _, s := range strings.Split(f.trusted, ",") {
		s = strings.TrimSpace(s)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return usagef("server: --trusted-proxies: %q is neither a CIDR (10.0.0.0/8) nor an address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, p.Masked())
	}
	return nil
}

// upstreamFlags are the local-service flags of sluice http.
type upstreamFlags struct {
	ca       string
	insecure bool
}

func (f *upstreamFlags) register(fs *flag.FlagSet, t *agent.Tunnel) {
	fs.StringVar(&t.UpstreamProtocol, "upstream-protocol", agent.UpstreamHTTP1, "`protocol` to the local service: http1, or http2 (h2c; h2 to an https:// service) for gRPC")
	fs.StringVar(&t.HostHeader, "host-header", agent.HostPreserve, "Host the local service sees: preserve (the public host), rewrite (the local host:port) or a literal `VALUE`")
	fs.StringVar(&f.ca, "upstream-ca", "", "CA `file` (PEM) that signed an https:// local service's certificate")
	fs.BoolVar(&f.insecure, "upstream-insecure", false, "do not verify an https:// local service's certificate (self-signed development servers)")
}

// localHTTP parses the local service of sluice http: PORT, HOST:PORT,
// http://HOST:PORT or https://HOST:PORT.
func (f *upstreamFlags) apply(arg string, t *agent.Tunnel) error {
	scheme := "http"
	if strings.Contains(arg, "://") {
		u, err := url.Parse(arg)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return fmt.Errorf("local service %q: write http://HOST:PORT or https://HOST:PORT, without a path", arg)
		}
		scheme, arg = u.Scheme, u.Host
		if u.Port() == "" {
			arg = u.Host + map[string]string{"http": ":80", "https": ":443"}[scheme]
		}
	}
	local, err := localAddr(arg)
	if err != nil {
		return err
	}
	t.Local = local
	if scheme != "https" {
		if f.ca != "" || f.insecure {
			return errors.New("--upstream-ca and --upstream-insecure apply to an https:// local service: write it as https://HOST:PORT")
		}
		return nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case f.ca != "" && f.insecure:
		return errors.New("--upstream-ca and --upstream-insecure contradict each other: drop one")
	case f.insecure:
		cfg.InsecureSkipVerify = true
	case f.ca != "":
		pool, err := caPool("--upstream-ca", f.ca, x509.NewCertPool())
		if err != nil {
			return err
		}
		cfg.RootCAs = pool
	}
	t.UpstreamTLS = cfg
	return nil
}
