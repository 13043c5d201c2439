package transport

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// ServerTLS describes the edge's TLS identity. Give either CertFile and
// KeyFile (PEM) or Certificate.
type ServerTLS struct {
	CertFile, KeyFile string
	Certificate       *tls.Certificate
	// ClientCAFile, when set, turns on mutual TLS: every agent must present
	// a certificate signed by a CA in this PEM bundle.
	ClientCAFile string
}

// Config builds a TLS 1.3-only server configuration.
func (s ServerTLS) Config() (*tls.Config, error) {
	cert, err := loadPair("server", s.CertFile, s.KeyFile, s.Certificate, true)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{*cert},
	}
	if s.ClientCAFile != "" {
		pool, err := loadCAFile(s.ClientCAFile, "client CA")
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientTLS describes how the agent checks the edge and, for mutual TLS,
// who it is.
//
// The edge is verified against CAFile (a PEM bundle), or Pin, or both; with
// neither, the system's root CAs are used.
type ClientTLS struct {
	// ServerName is the name sent in SNI and checked against the
	// certificate. Empty means the host part of the dialed address.
	ServerName string
	// CAFile is a PEM bundle of CAs that may sign the edge's certificate.
	CAFile string
	// Pin is the SHA-256 of the edge leaf certificate's SubjectPublicKeyInfo
	// in hex, colons allowed (see [Pin]).
	Pin string
	// CertFile and KeyFile (PEM) or Certificate: the agent's certificate for
	// mutual TLS. Leave empty when the edge does not ask for one.
	CertFile, KeyFile string
	Certificate       *tls.Certificate
}

// Config builds a TLS 1.3-only client configuration.
func (c ClientTLS) Config() (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: c.ServerName,
	}
	cert, err := loadPair("client", c.CertFile, c.KeyFile, c.Certificate, false)
	if err != nil {
		return nil, err
	}
	if cert != nil {
		// Always present the configured certificate, even when the edge's
		// list of acceptable CAs does not include its issuer, so that the
		// edge can say exactly why it is refused.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	if c.CAFile != "" {
		if cfg.RootCAs, err = loadCAFile(c.CAFile, "CA"); err != nil {
			return nil, err
		}
	}
	if c.Pin == "" {
		return cfg, nil
	}
	want, err := ParsePin(c.Pin)
	if err != nil {
		return nil, err
	}
	// The standard verification would reject a self-signed edge that only
	// a pin vouches for, so it is turned off and redone here: the pin
	// always, and the chain and name too when a CA file was given.
	roots := cfg.RootCAs
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("transport: edge sent no certificate; check that it is a sluice edge with TLS on")
		}
		leaf := cs.PeerCertificates[0]
		if got := pinBytes(leaf); !bytes.Equal(got, want) {
			return &PinMismatchError{Got: formatPin(got), Want: formatPin(want)}
		}
		if roots == nil {
			return nil
		}
		inter := x509.NewCertPool()
		for _, ic := range cs.PeerCertificates[1:] {
			inter.AddCert(ic)
		}
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: cs.ServerName})
		return err
	}
	return cfg, nil
}

// PinMismatchError is returned by a TLS dial when the edge's key is not the
// pinned one.
type PinMismatchError struct {
	Got, Want string // colon-separated hex
}

func (e *PinMismatchError) Error() string {
	return fmt.Sprintf("transport: edge certificate pin mismatch: edge key hashes to %s, pin is %s; "+
		"if the edge's key was replaced on purpose, set the new pin (sluice prints it at start), otherwise you may be talking to the wrong server", e.Got, e.Want)
}

// Pin returns the pin of a certificate: the SHA-256 of its
// SubjectPublicKeyInfo, as colon-separated lowercase hex.
func Pin(cert *x509.Certificate) string { return formatPin(pinBytes(cert)) }

// PinFile returns the pin of the first certificate in a PEM file (the leaf,
// in a chain file).
func PinFile(path string) (string, error) {
	certs, err := readCerts(path, "certificate")
	if err != nil {
		return "", err
	}
	return Pin(certs[0]), nil
}

// ParsePin decodes a pin written as 64 hex digits, with or without colons
// between bytes, in any case.
func ParsePin(s string) ([]byte, error) {
	h := strings.ReplaceAll(strings.TrimSpace(s), ":", "")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("transport: pin %q is not a SHA-256 in hex; expected 64 hex digits (colons allowed), as printed by sluice for the edge certificate", s)
	}
	return b, nil
}

func pinBytes(cert *x509.Certificate) []byte {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return sum[:]
}

func formatPin(b []byte) string {
	var sb strings.Builder
	for i, x := range b {
		if i > 0 {
			sb.WriteByte(':')
		}
		fmt.Fprintf(&sb, "%02x", x)
	}
	return sb.String()
}

// loadPair returns the certificate from files or memory; nil when neither is
// given and the certificate is optional.
func loadPair(role, certFile, keyFile string, mem *tls.Certificate, required bool) (*tls.Certificate, error) {
	switch {
	case mem != nil && (certFile != "" || keyFile != ""):
		return nil, fmt.Errorf("transport: %s TLS certificate given both in memory and as files; give one", role)
	case mem != nil:
		if len(mem.Certificate) == 0 || mem.PrivateKey == nil {
			return nil, fmt.Errorf("transport: %s TLS certificate in memory lacks a certificate or a private key", role)
		}
		return mem, nil
	case certFile == "" && keyFile == "":
		if required {
			return nil, fmt.Errorf("transport: %s TLS needs a certificate: set the certificate and key files", role)
		}
		return nil, nil
	case certFile == "" || keyFile == "":
		return nil, fmt.Errorf("transport: %s TLS needs both a certificate file and a key file (got cert %q, key %q)", role, certFile, keyFile)
	}
	certPEM, err := readFile(certFile, role+" certificate")
	if err != nil {
		return nil, err
	}
	keyPEM, err := readFile(keyFile, role+" private key")
	if err != nil {
		return nil, err
	}
	if !hasBlock(certPEM, func(t string) bool { return t == "CERTIFICATE" }) {
		return nil, fmt.Errorf("transport: %s certificate file %q holds no PEM CERTIFICATE block; it must be PEM (-----BEGIN CERTIFICATE-----), check it is not the key or a DER file", role, certFile)
	}
	if !hasBlock(keyPEM, func(t string) bool { return strings.HasSuffix(t, "PRIVATE KEY") }) {
		return nil, fmt.Errorf("transport: %s key file %q holds no PEM PRIVATE KEY block; it must be PEM (-----BEGIN ... PRIVATE KEY-----), check it is not the certificate or a DER file", role, keyFile)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("transport: %s certificate %q and key %q do not form a pair (%v); use the key the certificate was issued for", role, certFile, keyFile, err)
	}
	return &cert, nil
}

func loadCAFile(path, what string) (*x509.CertPool, error) {
	certs, err := readCerts(path, what)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// readCerts parses every CERTIFICATE block of a PEM file; at least one.
func readCerts(path, what string) ([]*x509.Certificate, error) {
	data, err := readFile(path, what)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("transport: %s file %q has a certificate that does not parse (%v); replace the file", what, path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("transport: %s file %q holds no PEM CERTIFICATE block; it must be PEM (-----BEGIN CERTIFICATE-----)", what, path)
	}
	return certs, nil
}

func readFile(path, what string) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("transport: %s file %q not found; check the path", what, path)
	case err != nil:
		return nil, fmt.Errorf("transport: read %s file %q: %w; check its permissions", what, path, err)
	}
	return b, nil
}

// trustOf names the CAs a configuration checks certificates against, for
// errors: a CA file given, or the system's store when none was.
func trustOf(pool *x509.CertPool, configured string) string {
	if pool == nil {
		return "the system's trusted CAs (no CA file was given)"
	}
	return configured
}

func hasBlock(data []byte, match func(string) bool) bool {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return false
		}
		if match(b.Type) {
			return true
		}
	}
}

// handshakeError wraps a TLS handshake failure with a hint about the usual
// cause; trust names the CAs the peer's certificate was checked against.
func handshakeError(peer string, err error, trust string) error {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		pin       *PinMismatchError
		alert     tls.AlertError
		recordHdr tls.RecordHeaderError
	)
	hint := "check both ends use sluice TLS settings that match"
	switch {
	case errors.As(err, &pin):
		return err
	case errors.As(err, &unknownCA):
		hint = "the peer's certificate is not signed by a CA in " + trust + "; give the CA that issued it, or pin the edge's key"
	case errors.As(err, &hostname):
		hint = "the certificate does not name the host dialed; set the server name to one the certificate lists"
	case errors.As(err, &invalid):
		hint = "the peer's certificate is expired, not yet valid or not usable for this purpose; issue a new one"
	case errors.As(err, &recordHdr):
		hint = "the peer does not speak TLS; turn TLS on at both ends or off at both"
	case strings.Contains(err.Error(), "unsupported versions") || strings.Contains(err.Error(), "protocol version"):
		hint = "sluice needs TLS 1.3 at both ends; upgrade the peer or fix its TLS settings"
	case errors.As(err, &alert):
		hint = "the peer refused the handshake; an edge with mutual TLS needs a client certificate issued by its client CA"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET):
		hint = "the peer closed the connection during the handshake; check TLS is on at both ends and the peer's log for why"
	case strings.Contains(err.Error(), "client didn't provide a certificate"):
		hint = "the edge requires a client certificate (mutual TLS); give the agent a certificate and key issued by the edge's client CA"
	}
	return fmt.Errorf("transport: TLS handshake %s failed: %w; %s", peer, err, hint)
}
