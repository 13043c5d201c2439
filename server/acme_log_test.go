package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme/autocert"
)

// TestACMEStoreLogsIssuedAndRenewed: a certificate stored for a name the
// store did not hold is logged as issued, one replacing it as renewed; the
// account key and challenge tokens are not logged.
func TestACMEStoreLogsIssuedAndRenewed(t *testing.T) {
	var logs bytes.Buffer
	c := loggedCache{autocert.DirCache(t.TempDir()), slog.New(slog.NewTextHandler(&logs, nil))}
	ctx := context.Background()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "web.sluice.test"}, DNSNames: []string{"web.sluice.test"},
		NotBefore: time.Now(), NotAfter: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	keyDER, _ := x509.MarshalECPrivateKey(key)
	stored := append(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	for _, put := range []struct{ key string }{{"acme_account+key"}, {"web.sluice.test"}, {"tok+http-01"}, {"web.sluice.test"}} {
		if err := c.Put(ctx, put.key, stored); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `msg="certificate issued" name=web.sluice.test names=web.sluice.test`) ||
		!strings.Contains(lines[0], "not_after=2030-01-02T03:04:05Z") || !strings.Contains(lines[1], `msg="certificate renewed" name=web.sluice.test`) {
		t.Fatalf("logged:\n%s", logs.String())
	}
}
