package mux

import (
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/frame"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		field  string // named in the error; "" means valid
	}{
		{"default", func(*Config) {}, ""},
		{"smallest windows", func(c *Config) {
			c.InitialStreamWindow, c.MaxStreamWindow, c.SessionWindow = frame.InitialStreamWindow, frame.InitialStreamWindow, frame.InitialSessionWindow
		}, ""},
		{"largest windows", func(c *Config) { c.MaxStreamWindow, c.SessionWindow = frame.MaxWindow, frame.MaxWindow }, ""},
		{"keepalive off", func(c *Config) { c.KeepAliveInterval, c.KeepAliveTimeout = 0, 0 }, ""},
		{"no streams", func(c *Config) { c.MaxConcurrentStreams = 0 }, "MaxConcurrentStreams"},
		{"no backlog", func(c *Config) { c.AcceptBacklog = 0 }, "AcceptBacklog"},
		{"stream window below the protocol's", func(c *Config) { c.InitialStreamWindow = frame.InitialStreamWindow - 1 }, "InitialStreamWindow"},
		{"max stream window below the initial", func(c *Config) { c.MaxStreamWindow = c.InitialStreamWindow - 1 }, "MaxStreamWindow"},
		{"max stream window beyond the protocol's", func(c *Config) { c.MaxStreamWindow = frame.MaxWindow + 1 }, "MaxStreamWindow"},
		{"session window below the protocol's", func(c *Config) { c.SessionWindow = frame.InitialSessionWindow - 1 }, "SessionWindow"},
		{"session window beyond the protocol's", func(c *Config) { c.SessionWindow = frame.MaxWindow + 1 }, "SessionWindow"},
		{"tiny frames", func(c *Config) { c.MaxFramePayload = 1023 }, "MaxFramePayload"},
		{"frames beyond the protocol's", func(c *Config) { c.MaxFramePayload = frame.MaxDataPayload + 1 }, "MaxFramePayload"},
		{"queue below a frame", func(c *Config) { c.MaxStreamQueue = c.MaxFramePayload - 1 }, "MaxStreamQueue"},
		{"negative interval", func(c *Config) { c.KeepAliveInterval = -time.Second }, "negative"},
		{"negative write timeout", func(c *Config) { c.WriteTimeout = -time.Second }, "negative"},
		{"keepalive timeout not above the interval", func(c *Config) { c.KeepAliveTimeout = c.KeepAliveInterval }, "KeepAliveTimeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.change(&cfg)
			err := cfg.Validate()
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("Validate: %v; want nil", err)
			case tc.field != "" && err == nil:
				t.Fatalf("Validate accepted %+v", cfg)
			case tc.field != "" && !strings.Contains(err.Error(), tc.field):
				t.Fatalf("Validate: %q; want it to name %s", err, tc.field)
			}
			if tc.field == "" {
				return
			}
			// The constructors refuse it too, before starting anything.
			a, b := tcpPair(t)
			defer a.Close()
			defer b.Close()
			if s, err := Client(a, cfg); err == nil {
				s.Close()
				t.Fatal("Client accepted an invalid Config")
			}
			if s, err := Server(b, cfg); err == nil {
				s.Close()
				t.Fatal("Server accepted an invalid Config")
			}
		})
	}
}
