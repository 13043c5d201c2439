package testutil

import (
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// Pebble is a real ACME server (Let's Encrypt's test CA) run in process on
// loopback. Its va package leaves a goroutine behind: goleak must ignore
// github.com/letsencrypt/pebble/v2/va.VAImpl.processTasks.
type Pebble struct {
	Directory   string         // ACME directory URL
	APIRoots    *x509.CertPool // trusts the directory's own HTTPS certificate
	APIRootFile string         // the same, as a PEM file
	Roots       *x509.CertPool // trusts the certificates Pebble issues

	orders atomic.Int64
}

// Orders returns how many new orders ACME clients have sent so far.
func (p *Pebble) Orders() int64 { return p.orders.Load() }

// StartPebble starts Pebble with challenges answered as valid without
// connecting back (edges in tests listen on random loopback ports, not 80
// and 443); it stops when the test ends.
func StartPebble(t *testing.T) *Pebble {
	t.Helper()
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
	p := &Pebble{APIRoots: x509.NewCertPool(), Roots: x509.NewCertPool()}
	h := front.Handler()
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Pebble's path for new orders (RFC 8555 newOrder in its directory).
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			p.orders.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(api.Close)
	p.Directory = api.URL + wfe.DirectoryPath
	p.APIRoots.AddCert(api.Certificate())
	p.Roots.AddCert(authority.GetRootCert(0).Cert)
	p.APIRootFile = filepath.Join(t.TempDir(), "pebble-api-root.pem")
	if err := os.WriteFile(p.APIRootFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
