package server

import (
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice/mux"
)

func TestConfigErrorNamesTheField(t *testing.T) {
	ok := Config{Listen: "127.0.0.1:0", Tokens: []string{"T"}}
	cases := []struct {
		name  string
		mod   func(*Config)
		field string
	}{
		{"no listen", func(c *Config) { c.Listen = "" }, "Listen"},
		{"listen without port", func(c *Config) { c.Listen = "127.0.0.1" }, "Listen"},
		{"no token", func(c *Config) { c.Tokens = nil }, "Tokens"},
		{"empty token", func(c *Config) { c.Tokens = []string{"a", ""} }, "Tokens"},
		{"http without domain", func(c *Config) { c.HTTP = "127.0.0.1:0" }, "Domain"},
		{"port range reversed", func(c *Config) { c.TCPPortMin, c.TCPPortMax = 10, 5 }, "TCPPortMin"},
		{"port range half open", func(c *Config) { c.TCPPortMin, c.TCPPortMax = 0, 100 }, "TCPPortMin"},
		{"port range too high", func(c *Config) { c.TCPPortMin, c.TCPPortMax = 100, 70000 }, "TCPPortMin"},
		{"public port", func(c *Config) { c.PublicHTTPPort = -1 }, "PublicHTTPPort"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.mod(&cfg)
			err := cfg.Validate()
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field || ce.Pkg != "server" || ce.Reason == "" {
				t.Fatalf("Validate() = %v; want a *ConfigError for field %s", err, tc.field)
			}
			if s, err := New(cfg); err == nil {
				s.ctrlLn.Close()
				t.Fatalf("New accepted what Validate refused")
			}
		})
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("a minimal config: %v", err)
	}
}

func TestConfigDefaultsFieldByField(t *testing.T) {
	c := Config{Listen: "0.0.0.0:7835", Domain: "example.com", Tokens: []string{"T"}, ReadHeaderTimeout: 3 * time.Second}
	c.setDefaults()
	if c.ReadHeaderTimeout != 3*time.Second {
		t.Errorf("a set field was overwritten: ReadHeaderTimeout = %v", c.ReadHeaderTimeout)
	}
	if c.ReclaimGrace != DefaultReclaimGrace || c.MaxHeaderBytes != 64<<10 || c.HandshakeTimeout != 5*time.Second || c.Limits.PendingPerSource != 8 {
		t.Errorf("zero fields not filled: %+v", c)
	}
	if c.TCPHost != "0.0.0.0" || c.PublicHost != "example.com" {
		t.Errorf("TCPHost %q, PublicHost %q; want the listen host and, for a wildcard, the domain", c.TCPHost, c.PublicHost)
	}
	// The edge sets the two session limits it has its own reasons for and
	// leaves the rest of Mux to mux, which fills zero fields itself.
	want := mux.Config{AcceptBacklog: edgeAcceptBacklog, MaxConcurrentStreams: c.Limits.StreamsPerSession}
	if c.Mux != want || c.Logger == nil {
		t.Errorf("Mux or Logger not filled: Mux %+v", c.Mux)
	}
	p := Config{Mux: mux.Config{AcceptBacklog: 9, KeepAliveInterval: time.Second}}
	p.setDefaults()
	if p.Mux.AcceptBacklog != 9 || p.Mux.KeepAliveInterval != time.Second || p.Mux.MaxConcurrentStreams == 0 {
		t.Errorf("a partly filled Mux lost a field or was not completed: %+v", p.Mux)
	}
}
