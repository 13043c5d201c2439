package fleet

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"time"
)

// fleetServerName is the name every edge's certificate carries and every
// edge checks: edges are dialled by IP or by names that differ from place
// to place, and what matters is that the CA derived from the secret signed
// the certificate, not which host it names.
const fleetServerName = "sluice-fleet"

// auth is what the fleet secret yields: a CA every edge derives alike, this
// edge's certificate signed by it, and the password of the embedded node's
// local client port.
type auth struct {
	ca     *x509.Certificate
	pool   *x509.CertPool
	cert   tls.Certificate
	client string // password of the embedded node's loopback client port
}

// newAuth derives the fleet's CA from secret and issues this edge a
// certificate whose common name is its edge ID, so a link's peer is known
// by the certificate it presented. The CA's key is an Ed25519 key whose seed
// comes from the secret, and its certificate is built from fixed fields, so
// every edge holding the secret makes the same CA and no file has to be
// shared beyond the secret itself.
func newAuth(secret, edgeID string) (*auth, error) {
	seed, err := hkdf.Key(sha256.New, []byte(secret), nil, "sluice fleet CA", ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("fleet: derive the CA key: %w", err)
	}
	caKey := ed25519.NewKeyFromSeed(seed)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sluice fleet CA"},
		NotBefore:             time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2120, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("fleet: make the CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("fleet: parse the CA certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("fleet: generate the edge key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("fleet: serial: %w", err)
	}
	now := time.Now()
	leafTmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: edgeID},
		DNSNames:     []string{fleetServerName},
		// An hour back for peers whose clocks lag; a year ahead is longer
		// than any edge runs between restarts.
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(365 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("fleet: issue the edge certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(leafDER)
	if err != nil {
		return nil, fmt.Errorf("fleet: parse the edge certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("sluice fleet local client"))
	return &auth{
		ca:     ca,
		pool:   pool,
		cert:   tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key, Leaf: leaf},
		client: hex.EncodeToString(mac.Sum(nil)),
	}, nil
}

// tlsConfig is the mutual TLS both ends of a link, and both ends of a
// store route, use: each presents its certificate and accepts only one
// signed by the fleet's CA.
func (a *auth) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{a.cert},
		RootCAs:      a.pool,
		ClientCAs:    a.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ServerName:   fleetServerName,
	}
}
