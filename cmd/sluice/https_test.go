package main

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/server"
	"github.com/sluicehq/sluice/transport"
)

func TestHTTPLocalServiceForms(t *testing.T) {
	for _, tc := range []struct {
		arg, local string
		tls        bool
	}{
		{"3000", "localhost:3000", false},
		{"127.0.0.1:3001", "127.0.0.1:3001", false},
		{"http://localhost:8000", "localhost:8000", false},
		{"https://localhost:3443", "localhost:3443", true},
		{"https://dev.internal", "dev.internal:443", true},
	} {
		var f upstreamFlags
		f.insecure = tc.tls
		var tun agent.Tunnel
		if err := f.apply(tc.arg, &tun); err != nil {
			t.Fatalf("%q: %v", tc.arg, err)
		}
		if tun.Local != tc.local || (tun.UpstreamTLS != nil) != tc.tls {
			t.Fatalf("%q: local %q tls %v, want %q tls %v", tc.arg, tun.Local, tun.UpstreamTLS != nil, tc.local, tc.tls)
		}
	}
}

func TestHTTPUpstreamTLSFlags(t *testing.T) {
	ca, err := transport.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := ca.WriteCAFile(caFile); err != nil {
		t.Fatal(err)
	}
	var tun agent.Tunnel
	if err := (&upstreamFlags{ca: caFile}).apply("https://localhost:3443", &tun); err != nil || tun.UpstreamTLS.RootCAs == nil {
		t.Fatalf("--upstream-ca: %v, roots %v", err, tun.UpstreamTLS)
	}
	if err := (&upstreamFlags{insecure: true}).apply("https://localhost:3443", &tun); err != nil || !tun.UpstreamTLS.InsecureSkipVerify {
		t.Fatalf("--upstream-insecure: %v", err)
	}
	for _, tc := range []struct {
		f    upstreamFlags
		arg  string
		want string
	}{
		{upstreamFlags{insecure: true}, "3000", "https://HOST:PORT"},
		{upstreamFlags{ca: caFile, insecure: true}, "https://localhost:1", "contradict"},
		{upstreamFlags{}, "https://localhost:1/path", "without a path"},
		{upstreamFlags{}, "ftp://localhost:1", "http://HOST:PORT"},
		{upstreamFlags{ca: os.DevNull}, "https://localhost:1", "no PEM certificate"},
	} {
		err := tc.f.apply(tc.arg, &agent.Tunnel{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q %+v: error %v, want one saying %q", tc.arg, tc.f, err, tc.want)
		}
	}
}

func TestTrustedProxiesFlag(t *testing.T) {
	var cfg server.Config
	if err := (&edgeHTTPSFlags{trusted: "10.0.0.0/8, 192.168.1.7,::1"}).apply(&cfg); err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"), netip.MustParsePrefix("::1/128")}
	if len(cfg.TrustedProxies) != 3 || cfg.TrustedProxies[0] != want[0] || cfg.TrustedProxies[1] != want[1] || cfg.TrustedProxies[2] != want[2] {
		t.Fatalf("parsed %v, want %v", cfg.TrustedProxies, want)
	}
	err := (&edgeHTTPSFlags{trusted: "10.0.0.0/8,nonsense"}).apply(&cfg)
	if err == nil || !strings.Contains(err.Error(), `"nonsense"`) {
		t.Fatalf("a bad entry: %v", err)
	}
}

func TestServerConfigErrorsNameTheFlag(t *testing.T) {
	_, err := server.New(server.Config{Listen: "127.0.0.1:0", Domain: "localhost", Tokens: []string{"T"}, HTTPS: "127.0.0.1:0", HTTPSCertFile: "only-cert.pem"})
	err = explain(err)
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--https-key") {
		t.Fatalf("got %v, want a usage error naming --https-key", err)
	}
}
