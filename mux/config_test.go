package mux

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice/frame"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		field  string // the ConfigError's Field; "" means valid
	}{
		{"default", func(*Config) {}, ""},
		{"zero", func(c *Config) { *c = Config{} }, ""},
		{"only a larger initial window: the maximum follows", func(c *Config) { *c = Config{InitialStreamWindow: 32 << 20} }, ""},
		{"only a longer interval: the timeout follows", func(c *Config) { *c = Config{KeepAliveInterval: 20 * time.Second} }, ""},
		{"only a larger frame: the queue follows", func(c *Config) { *c = Config{MaxFramePayload: frame.MaxDataPayload} }, ""},
		{"smallest windows", func(c *Config) {
			c.InitialStreamWindow, c.MaxStreamWindow, c.SessionWindow = frame.InitialStreamWindow, frame.InitialStreamWindow, frame.InitialSessionWindow
		}, ""},
		{"largest windows", func(c *Config) { c.MaxStreamWindow, c.SessionWindow = frame.MaxWindow, frame.MaxWindow }, ""},
		{"keepalive off", func(c *Config) { c.KeepAliveInterval, c.KeepAliveTimeout = -1, 0 }, ""},
		{"no write timeout", func(c *Config) { c.WriteTimeout = -1 }, ""},
		{"no streams", func(c *Config) { c.MaxConcurrentStreams = -1 }, "MaxConcurrentStreams"},
		{"no backlog", func(c *Config) { c.AcceptBacklog = -1 }, "AcceptBacklog"},
		{"stream window below the protocol's", func(c *Config) { c.InitialStreamWindow = frame.InitialStreamWindow - 1 }, "InitialStreamWindow"},
		{"max stream window below the initial", func(c *Config) { c.MaxStreamWindow = c.InitialStreamWindow - 1 }, "MaxStreamWindow"},
		{"max stream window beyond the protocol's", func(c *Config) { c.MaxStreamWindow = frame.MaxWindow + 1 }, "MaxStreamWindow"},
		{"session window below the protocol's", func(c *Config) { c.SessionWindow = frame.InitialSessionWindow - 1 }, "SessionWindow"},
		{"session window beyond the protocol's", func(c *Config) { c.SessionWindow = frame.MaxWindow + 1 }, "SessionWindow"},
		{"tiny frames", func(c *Config) { c.MaxFramePayload = 1023 }, "MaxFramePayload"},
		{"frames beyond the protocol's", func(c *Config) { c.MaxFramePayload = frame.MaxDataPayload + 1 }, "MaxFramePayload"},
		{"queue below a frame", func(c *Config) { c.MaxStreamQueue = c.MaxFramePayload - 1 }, "MaxStreamQueue"},
		{"keepalive timeout not above the interval", func(c *Config) { c.KeepAliveTimeout = c.KeepAliveInterval }, "KeepAliveTimeout"},
		{"negative keepalive timeout", func(c *Config) { c.KeepAliveTimeout = -time.Second }, "KeepAliveTimeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.change(&cfg)
			err := cfg.Validate()
			var ce *ConfigError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("Validate: %v; want nil", err)
			case tc.field != "" && err == nil:
				t.Fatalf("Validate accepted %+v", cfg)
			case tc.field != "" && !errors.As(err, &ce):
				t.Fatalf("Validate: %v (%T); want a *ConfigError", err, err)
			case tc.field != "" && ce.Field != tc.field:
				t.Fatalf("Validate: %q names %s; want %s", err, ce.Field, tc.field)
			}
			// The constructors agree with Validate, before starting anything.
			a, b := tcpPair(t)
			defer a.Close()
			defer b.Close()
			s, err := Client(a, cfg)
			if tc.field != "" {
				if err == nil {
					s.Close()
					t.Fatal("Client accepted an invalid Config")
				}
				if !errors.As(err, &ce) || ce.Field != tc.field {
					t.Fatalf("Client: %v; want a *ConfigError for %s", err, tc.field)
				}
				return
			}
			if err != nil {
				t.Fatalf("Client refused a valid Config: %v", err)
			}
			s.Close()
		})
	}
}

// TestConfigDefaults: the zero Config is DefaultConfig, with every field
// filled in, and a field set by the caller is kept.
func TestConfigDefaults(t *testing.T) {
	def := DefaultConfig()
	if got := (Config{}).withDefaults(); got != def {
		t.Fatalf("zero Config with defaults %+v, DefaultConfig %+v", got, def)
	}
	v := reflect.ValueOf(def)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Errorf("DefaultConfig leaves %s zero", v.Type().Field(i).Name)
		}
	}
	got := Config{SessionWindow: 64 << 20, KeepAliveInterval: 20 * time.Second}.withDefaults()
	if got.SessionWindow != 64<<20 || got.KeepAliveInterval != 20*time.Second {
		t.Errorf("fields set by the caller changed: %+v", got)
	}
	if got.KeepAliveTimeout != 60*time.Second {
		t.Errorf("KeepAliveTimeout %s with a 20s interval; want three intervals, 60s", got.KeepAliveTimeout)
	}
	if got.MaxStreamWindow != DefaultMaxStreamWindow {
		t.Errorf("MaxStreamWindow %d, want the default %d", got.MaxStreamWindow, DefaultMaxStreamWindow)
	}
}
