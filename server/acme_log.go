package server

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/crypto/acme/autocert"
)

// loggedCache is autocert's certificate store with a log line for every
// certificate it stores: autocert stores a certificate exactly when the CA
// has issued one, first for a name or as a renewal, and says nothing else.
type loggedCache struct {
	autocert.Cache
	log *slog.Logger
}

// Put logs a certificate (not the account key or a challenge token) with its
// names and expiry, as issued when the store had none for the key before and
// renewed when it replaces one.
func (c loggedCache) Put(ctx context.Context, key string, data []byte) error {
	name, kind, _ := strings.Cut(key, "+")
	isCert := kind == "" || kind == "rsa"
	renewed := false
	if isCert {
		_, err := c.Cache.Get(ctx, key)
		renewed = err == nil
	}
	if err := c.Cache.Put(ctx, key, data); err != nil {
		if isCert {
			c.log.Error("a certificate the CA issued could not be stored; it is served from memory until the edge restarts", "name", name, "err", err)
		}
		return err
	}
	if !isCert {
		return nil
	}
	event := "certificate issued"
	if renewed {
		event = "certificate renewed"
	}
	attrs := []any{"name", name}
	if leaf, err := leafOf(data); err == nil {
		attrs = append(attrs, "names", strings.Join(leaf.DNSNames, ","), "issuer", leaf.Issuer.CommonName,
			"not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	c.log.Info(event, attrs...)
	return nil
}

// leafOf finds the first certificate in autocert's stored form: the private
// key and the chain, PEM-encoded one after the other.
func leafOf(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no certificate in the stored data")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}
