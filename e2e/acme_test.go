package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/testutil"
	"github.com/sluicehq/sluice/server"
)

// pebble is a real ACME server (Let's Encrypt's test CA) run in process.
type pebble struct {
	directory string         // ACME directory URL
	apiRoots  *x509.CertPool // trusts the directory's own HTTPS certificate
	roots     *x509.CertPool // trusts the certificates Pebble issues
}

func startPebble(t *testing.T) *pebble {
	t.Helper()
	// Challenges are answered as valid without connecting back: the edge
	// listens on random loopback ports, not 80 and 443.
	t.Setenv("PEBBLE_VA_ALWAYS_VALID", "1")
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	logger := log.New(io.Discard, "", 0)
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		logger = log.New(os.Stderr, "pebble ", 0)
	}
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	validator := va.New(logger, 80, 443, false, "", store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 3, 5)
	api := httptest.NewTLSServer(front.Handler())
	t.Cleanup(api.Close)
	p := &pebble{directory: api.URL + wfe.DirectoryPath, apiRoots: x509.NewCertPool(), roots: x509.NewCertPool()}
	p.apiRoots.AddCert(api.Certificate())
	p.roots.AddCert(authority.GetRootCert(0).Cert)
	return p
}

// httpsClient trusts roots and sends every connection to addr.
func httpsClient(t *testing.T, addr string, roots *x509.CertPool) *http.Client {
	t.Helper()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

func TestHTTPSWithACMEReachesTunnelOverH2(t *testing.T) {
	p := startPebble(t)
	state := t.TempDir()
	srv := startEdge(t, func(c *server.Config) {
		c.Domain = "sluice.test"
		c.HTTPS = "127.0.0.1:0"
		c.StateDir = state
		c.ACMEDirectory = p.directory
		c.ACMERoots = p.apiRoots
		c.ACMEEmail = "ops@sluice.test"
	})
	local := localHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s proto=%s", r.Host, r.Header.Get("X-Forwarded-Proto"))
	}))
	as := startAgent(t, srv, agent.Tunnel{Kind: control.KindHTTP, Name: "app", Local: local, LogRequests: true})
	httpsPort := srv.HTTPSAddr().(*net.TCPAddr).Port
	want := fmt.Sprintf("https://app.sluice.test:%d", httpsPort)
	if as[0].URL != want {
		t.Fatalf("assigned URL %q, want %q", as[0].URL, want)
	}

	c := httpsClient(t, srv.HTTPSAddr().String(), p.roots)
	resp, err := c.Get(want + "/")
	if err != nil {
		t.Fatalf("GET %s with Pebble's root trusted: %v", want, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" {
		t.Fatalf("got %s %s, want 200 over HTTP/2.0 (ALPN h2)", resp.Proto, resp.Status)
	}
	if got := string(body); got != fmt.Sprintf("hello app.sluice.test:%d proto=https", httpsPort) {
		t.Fatalf("local service answered %q", got)
	}
	if leaf := resp.TLS.PeerCertificates[0]; leaf.Subject.CommonName != "app.sluice.test" && (len(leaf.DNSNames) == 0 || leaf.DNSNames[0] != "app.sluice.test") {
		t.Fatalf("certificate names %v, want app.sluice.test", leaf.DNSNames)
	}
	if _, err := os.Stat(filepath.Join(state, "acme", "app.sluice.test")); err != nil {
		t.Fatalf("the certificate is not stored under the state directory: %v", err)
	}

	// A name nobody registered gets no certificate: the edge never asks
	// the CA, so strangers cannot spend its rate limit.
	conn, err := tls.Dial("tcp", srv.HTTPSAddr().String(), &tls.Config{ServerName: "stranger.sluice.test", RootCAs: p.roots})
	if err == nil {
		conn.Close()
		t.Fatal("TLS handshake for an unregistered name succeeded")
	}
	if _, err := os.Stat(filepath.Join(state, "acme", "stranger.sluice.test")); err == nil {
		t.Fatal("a certificate was obtained for an unregistered name")
	}

	// Plain HTTP redirects to the same URL over HTTPS, method kept.
	plain := viaEdge(t, srv.HTTPAddr().String())
	req, _ := http.NewRequest("POST", fmt.Sprintf("http://app.sluice.test:%d/hook?x=1", srv.HTTPAddr().(*net.TCPAddr).Port), strings.NewReader("{}"))
	resp, err = plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != want+"/hook?x=1" {
		t.Fatalf("plain HTTP answered %s Location %q, want 307 to %s/hook?x=1", resp.Status, resp.Header.Get("Location"), want)
	}
}

// TestACMECertificatesHaveASeriesEach: every certificate the edge got over
// ACME has its own expiry series, named by its DNS name (ACME certificates
// have an empty subject, and used to collapse into one series).
func TestACMECertificatesHaveASeriesEach(t *testing.T) {
	p := startPebble(t)
	reg := prometheus.NewRegistry()
	srv := startEdge(t, func(c *server.Config) {
		c.Domain = "sluice.test"
		c.HTTPS = "127.0.0.1:0"
		c.StateDir = t.TempDir()
		c.ACMEDirectory = p.directory
		c.ACMERoots = p.apiRoots
		c.Metrics = reg
	})
	local := localHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	startAgent(t, srv,
		agent.Tunnel{Kind: control.KindHTTP, Name: "one", Local: local},
		agent.Tunnel{Kind: control.KindHTTP, Name: "two", Local: local})
	c := httpsClient(t, srv.HTTPSAddr().String(), p.roots)
	port := srv.HTTPSAddr().(*net.TCPAddr).Port
	for _, name := range []string{"one", "two"} {
		resp, err := c.Get(fmt.Sprintf("https://%s.sluice.test:%d/", name, port))
		if err != nil {
			t.Fatalf("GET over HTTPS for %s: %v", name, err)
		}
		resp.Body.Close()
	}
	url := testutil.ServeMetrics(t, reg)
	sc := testutil.ScrapeMetrics(t, url)
	for _, name := range []string{"one.sluice.test", "two.sluice.test"} {
		if v, ok := sc.Value("sluice_edge_certificate_expiry_timestamp_seconds", "listener", "https", "name", name); !ok || v < float64(time.Now().Unix()) {
			t.Errorf("no expiry series in the future for %s (got %v, %v)", name, v, ok)
		}
	}
}
