package agent

import (
	"testing"
	"time"
)

func TestLocalDialerKeepAlive(t *testing.T) {
	for _, tc := range []struct {
		addr string
		off  bool // keepalive off
	}{
		{"127.0.0.1:3000", true},
		{"127.9.9.9:3000", true},
		{"[::1]:3000", true},
		{"localhost:3000", true},
		{"10.0.0.5:3000", false},
		{"db.internal:5432", false},
		{"3000", false}, // not host:port: left as Go dials it
	} {
		d := localDialer(tc.addr, 5*time.Second)
		if d.Timeout != 5*time.Second {
			t.Errorf("%s: timeout %s, want 5s", tc.addr, d.Timeout)
		}
		if off := d.KeepAlive < 0; off != tc.off {
			t.Errorf("%s: keepalive off = %v, want %v", tc.addr, off, tc.off)
		}
	}
}
