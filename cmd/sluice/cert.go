package main

import (
	"github.com/sluicehq/sluice/internal/atomicfile"

	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"

	"github.com/sluicehq/sluice/internal/statedir"
	"github.com/sluicehq/sluice/transport"
)

// The loopback edge's generated certificate lives in the state directory
// under these names, so agents that pinned it keep connecting after the
// edge restarts.
const (
	loopbackCertFile = "edge-loopback.crt"
	loopbackKeyFile  = "edge-loopback.key"
)

// loopbackCert returns the loopback edge's certificate: the one kept in
// stateDir, or a new one written there (a throwaway one without stateDir).
// where says which, for the start-up line.
func loopbackCert(stateDir string, log interface{ Warn(string, ...any) }) (cert tls.Certificate, where string, err error) {
	if stateDir != "" {
		certPath, keyPath := filepath.Join(stateDir, loopbackCertFile), filepath.Join(stateDir, loopbackKeyFile)
		cert, err := tls.LoadX509KeyPair(certPath, keyPath)
		if err == nil {
			if cert.Leaf == nil && len(cert.Certificate) > 0 {
				cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
			}
			if err == nil {
				return cert, "kept in " + certPath, nil
			}
		}
		if !errors.Is(err, os.ErrNotExist) {
			log.Warn("the kept loopback certificate is unusable; making a new one (agents must pass the new pin)", "file", certPath, "err", err)
		}
	}
	ca, err := transport.NewCA("sluice loopback edge CA")
	if err != nil {
		return tls.Certificate{}, "", err
	}
	cert, err = ca.Issue("localhost", "127.0.0.1", "::1")
	if err != nil {
		return tls.Certificate{}, "", err
	}
	if stateDir == "" {
		return cert, "throwaway: no state directory", nil
	}
	if err := saveCert(stateDir, cert); err != nil {
		log.Warn("could not keep the loopback certificate: agents must pass a new pin after a restart", "state_dir", stateDir, "err", err)
		return cert, "not kept: " + err.Error(), nil
	}
	return cert, "new, kept in " + filepath.Join(stateDir, loopbackCertFile), nil
}

// saveCert writes the key, then the certificate, each atomically.
func saveCert(dir string, cert tls.Certificate) error {
	if _, err := statedir.Ensure(dir); err != nil {
		return err
	}
	certPEM, keyPEM, err := transport.EncodePEM(cert)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, loopbackKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, loopbackCertFile), certPEM, 0o644)
}
