package server

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/server/console"
	"github.com/sluicehq/sluice/transport"
)

// TestConsoleCertificates: the console lists the agent listener's
// certificate, a certificate ACME stored for a name (with when its renewal
// starts), and a name whose issuance is failing (with the error and the
// retry), as the edge holds them.
func TestConsoleCertificates(t *testing.T) {
	ca, err := transport.NewCA("console test CA")
	if err != nil {
		t.Fatal(err)
	}
	agentCert, err := ca.Issue("edge.example")
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := transport.ServerTLS{Certificate: &agentCert}.Config()
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	s := startServer(t, func(c *Config) {
		c.TLS = tlsCfg
		c.HTTPS = "127.0.0.1:0"
		c.StateDir = state
		c.ACMEDirectory = "https://127.0.0.1:1/directory"
		c.Admin, c.AdminToken = "127.0.0.1:0", "A"
	})
	// A certificate as autocert stores it: the key and the chain, in PEM,
	// in a file named by the host.
	issued, err := ca.Issue("app.localhost")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := transport.EncodePEM(issued)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "acme", "app.localhost"), append(keyPEM, certPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	s.https.issuer.fail("broken.localhost", hold{}, errors.New("the CA said no"))

	got := map[string]console.Certificate{}
	for _, c := range s.ConsoleBackend().Snapshot().Certificates {
		got[c.Listener+" "+c.Subject] = c
	}
	if c := got["agents edge.example"]; c.State != "static" || c.NotAfter.IsZero() || c.Issuer != "console test CA" {
		t.Errorf("agent listener's certificate: %+v", c)
	}
	c := got["https app.localhost"]
	if c.State != "issued" || c.NotAfter.IsZero() || !c.Renewal.Equal(c.NotAfter.Add(-30*24*time.Hour)) {
		t.Errorf("the ACME certificate: %+v", c)
	}
	if c := got["https broken.localhost"]; c.State != "failing" || c.LastError != "the CA said no" || !c.Retry.After(time.Now()) {
		t.Errorf("the failing name: %+v", c)
	}
	if len(got) != 3 {
		t.Errorf("certificates %v, want these three", got)
	}
}
