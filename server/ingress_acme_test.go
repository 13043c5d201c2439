package server

import (
	"crypto/tls"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
)

// unreachableACME starts an edge whose ACME directory refuses connections.
func unreachableACME(t *testing.T) *Server {
	return startServer(t, func(c *Config) {
		c.HTTPS = "127.0.0.1:0"
		c.StateDir = t.TempDir()
		c.ACMEDirectory = "https://127.0.0.1:1/directory"
	})
}

func TestACMEFailureHoldsOffAndDoubles(t *testing.T) {
	s := unreachableACME(t)
	// A live tunnel's hostname, as a registration would route it.
	s.reg.hosts.Store("app.localhost", &endpoint{host: "app.localhost"})
	iss := s.https.issuer
	now := time.Now()
	iss.now = func() time.Time { return now }
	hello := &tls.ClientHelloInfo{ServerName: "app.localhost"}
	if _, err := iss.getCertificate(hello); err == nil {
		t.Fatal("a certificate came from an unreachable CA")
	}
	if h := iss.held["app.localhost"]; h.wait != firstIssueHold {
		t.Fatalf("after the first failure the hold is %v, want %v", h.wait, firstIssueHold)
	}
	_, err := iss.getCertificate(hello)
	if err == nil || !strings.Contains(err.Error(), "tries again after") {
		t.Fatalf("during the hold: %v, want an answer that names the retry time without asking the CA", err)
	}
	now = now.Add(firstIssueHold + time.Second)
	iss.getCertificate(hello)
	if h := iss.held["app.localhost"]; h.wait != 2*firstIssueHold {
		t.Fatalf("after the second failure the hold is %v, want %v", h.wait, 2*firstIssueHold)
	}
}

func TestACMERateLimitRetryAfterIsHonoured(t *testing.T) {
	s := unreachableACME(t)
	iss := s.https.issuer
	limited := &acme.Error{StatusCode: 429, ProblemType: "urn:ietf:params:acme:error:rateLimited", Header: http.Header{"Retry-After": {"7200"}}}
	iss.fail("busy.localhost", hold{}, limited)
	if h := iss.held["busy.localhost"]; h.wait != 2*time.Hour {
		t.Fatalf("hold %v after a rate limit with Retry-After 7200, want 2h", h.wait)
	}
}

func TestACMEIsNotAskedForUnregisteredNames(t *testing.T) {
	s := unreachableACME(t)
	_, err := s.https.issuer.getCertificate(&tls.ClientHelloInfo{ServerName: "nobody.localhost"})
	if !errors.Is(err, errNotRegistered) {
		t.Fatalf("got %v, want errNotRegistered", err)
	}
	if len(s.https.issuer.held) != 0 {
		t.Fatal("a refused name was counted as a CA failure")
	}
}

func TestHTTPSConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		mod   func(*Config)
		field string
	}{
		{func(c *Config) { c.HTTPSCertFile = "c.pem" }, "HTTPSCertFile"},
		{func(c *Config) { c.HTTPS = "127.0.0.1:0"; c.HTTPSCertFile = "c.pem" }, "HTTPSKeyFile"},
		{func(c *Config) { c.HTTPPlain = true }, "HTTPPlain"},
		{func(c *Config) {
			c.HTTPS = "127.0.0.1:0"
			c.HTTPSCertFile, c.HTTPSKeyFile, c.ACMEEmail = "c.pem", "k.pem", "a@b"
		}, "ACMEDirectory"},
		{func(c *Config) {
			c.HTTPS = "127.0.0.1:0"
			c.HTTPSCertFile, c.HTTPSKeyFile = "/nonexistent/c.pem", "/nonexistent/k.pem"
		}, "HTTPSCertFile"},
	} {
		cfg := Config{Listen: "127.0.0.1:0", Domain: "localhost", Tokens: []string{"T"}}
		tc.mod(&cfg)
		_, err := New(cfg)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("got %v, want a ConfigError for %s", err, tc.field)
		}
	}
}
