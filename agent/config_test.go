package agent

import (
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice/control"
)

func TestConfigErrorNamesTheField(t *testing.T) {
	tcp := Tunnel{Kind: control.KindTCP, Local: "127.0.0.1:5432"}
	cases := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"no server", Config{Token: "T", Tunnels: []Tunnel{tcp}}, "Server"},
		{"server without port", Config{Server: "edge", Token: "T", Tunnels: []Tunnel{tcp}}, "Server"},
		{"no token", Config{Server: "e:1", Tunnels: []Tunnel{tcp}}, "Token"},
		{"no tunnels", Config{Server: "e:1", Token: "T"}, "Tunnels"},
		{"unknown kind", Config{Server: "e:1", Token: "T", Tunnels: []Tunnel{tcp, {Kind: "sctp", Local: "h:1"}}}, "Tunnels[1].Kind"},
		{"http without local", Config{Server: "e:1", Token: "T", Tunnels: []Tunnel{{Kind: control.KindHTTP}}}, "Tunnels[0].Local"},
		{"local port zero", Config{Server: "e:1", Token: "T", Tunnels: []Tunnel{{Kind: control.KindTCP, Local: "127.0.0.1:0"}}}, "Tunnels[0].Local"},
		{"local without port", Config{Server: "e:1", Token: "T", Tunnels: []Tunnel{{Kind: control.KindTCP, Local: "3000"}}}, "Tunnels[0].Local"},
		{"remote port", Config{Server: "e:1", Token: "T", Tunnels: []Tunnel{{Kind: control.KindTCP, Local: "h:1", RemotePort: 70000}}}, "Tunnels[0].RemotePort"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field || ce.Pkg != "agent" || ce.Reason == "" {
				t.Fatalf("New() = %v; want a *ConfigError for field %s", err, tc.field)
			}
		})
	}
}

func TestConfigDefaultsFieldByField(t *testing.T) {
	c := Config{DialTimeout: 2 * time.Second, FirstConnectTimeout: -1}
	c.setDefaults()
	if c.DialTimeout != 2*time.Second || c.FirstConnectTimeout != -1 {
		t.Errorf("set fields overwritten: %v %v", c.DialTimeout, c.FirstConnectTimeout)
	}
	if c.StableAfter != 10*time.Second || c.ShutdownTimeout != 10*time.Second || c.Logger == nil {
		t.Errorf("zero fields not filled: %+v", c)
	}
}

func TestLocalAddr(t *testing.T) {
	for in, want := range map[string]string{"3000": "localhost:3000", ":8080": "localhost:8080", "127.0.0.1:5432": "127.0.0.1:5432", "[::1]:80": "[::1]:80"} {
		if got, err := LocalAddr(in); err != nil || got != want {
			t.Errorf("LocalAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "70000", "host", "h:port", "h:0", ""} {
		if got, err := LocalAddr(in); err == nil {
			t.Errorf("LocalAddr(%q) = %q, accepted", in, got)
		}
	}
}
