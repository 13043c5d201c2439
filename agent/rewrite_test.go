package agent

import (
	"testing"
	"time"
)

func TestRewriteURL(t *testing.T) {
	const public = "https://app.example.com"
	for _, tc := range []struct {
		in, sent, want string
		ok             bool
	}{
		{"http://localhost:3000/a?b=1#c", "app.example.com", public + "/a?b=1#c", true},
		{"http://127.0.0.1:3000/", "app.example.com", public + "/", true},
		{"http://[::1]:3000/x", "app.example.com", public + "/x", true},
		{"http://localhost:3000", "app.example.com", public, true},
		{"http://localhost:4000/", "app.example.com", "", false},               // another local port
		{"https://other.example/x", "app.example.com", "", false},              // elsewhere
		{"/relative", "app.example.com", "", false},                            // already relative
		{"http://myapp.test:8000/in", "myapp.test:8000", public + "/in", true}, // the --host-header value echoed back
		{"http://app.example.com/keep", "app.example.com", "", false},          // already public
	} {
		got, ok := rewriteURL(tc.in, "localhost:3000", tc.sent, public)
		if ok != tc.ok || got != tc.want {
			t.Errorf("rewriteURL(%q, sent %q) = %q, %v; want %q, %v", tc.in, tc.sent, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseGRPCTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{"1H": time.Hour, "2M": 2 * time.Minute, "3S": 3 * time.Second, "250m": 250 * time.Millisecond, "7u": 7 * time.Microsecond, "9n": 9} {
		if d, ok := parseGRPCTimeout(in); !ok || d != want {
			t.Errorf("%q: %v %v, want %v", in, d, ok, want)
		}
	}
	for _, bad := range []string{"", "S", "10", "123456789S", "-1S", "5x"} {
		if _, ok := parseGRPCTimeout(bad); ok {
			t.Errorf("%q parsed as a timeout", bad)
		}
	}
}

func TestRewriteCookieDomain(t *testing.T) {
	for _, tc := range []struct{ cookie, local, sent, want string }{
		{"s=1; Domain=localhost; Path=/", "localhost:3000", "app.tunnel.test", "s=1; Domain=app.tunnel.test; Path=/"},
		{"s=1; path=/; domain=.LOCALHOST", "127.0.0.1:3000", "app.tunnel.test", "s=1; path=/; Domain=app.tunnel.test"},
		{"s=1; Domain=myapp.test", "localhost:3000", "myapp.test:8000", "s=1; Domain=app.tunnel.test"}, // --host-header sent it
		{"s=1; Domain=dev.internal", "dev.internal:8080", "app.tunnel.test", "s=1; Domain=app.tunnel.test"},
		{"s=1; Domain=example.org", "localhost:3000", "app.tunnel.test", "s=1; Domain=example.org"},
		{"s=1; Domain=app.tunnel.test", "localhost:3000", "app.tunnel.test", "s=1; Domain=app.tunnel.test"},
		{"s=1; Path=/", "localhost:3000", "app.tunnel.test", "s=1; Path=/"},
		{"s=Domain=localhost", "localhost:3000", "app.tunnel.test", "s=Domain=localhost"}, // a value, not an attribute
	} {
		if got := rewriteCookieDomain(tc.cookie, tc.local, tc.sent, "app.tunnel.test"); got != tc.want {
			t.Errorf("%q (local %s, sent %s): got %q, want %q", tc.cookie, tc.local, tc.sent, got, tc.want)
		}
	}
}
