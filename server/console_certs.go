package server

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluicehq/sluice/server/console"
)

type cachedCert struct {
	mod  time.Time
	leaf *x509.Certificate
}

// acmeRenewBefore is when autocert starts renewing: its default, 30 days
// before expiry.
const acmeRenewBefore = 30 * 24 * time.Hour

// certificates lists the agent listener's certificate, the HTTPS ingress's
// static one, or the ones ACME issued (from the certificate store) and the
// names whose issuance is failing.
func (c *consoleEdge) certificates() []console.Certificate {
	s := c.s
	out := []console.Certificate{}
	static := func(listener string, leaves []*x509.Certificate) {
		for _, l := range leaves {
			out = append(out, console.Certificate{Listener: listener, Subject: certSubject(l), Issuer: l.Issuer.CommonName, NotAfter: l.NotAfter, State: "static"})
		}
	}
	if s.cfg.TLS != nil {
		static("agents", leaves(s.cfg.TLS.Certificates))
	}
	if s.https == nil {
		return out
	}
	if s.https.issuer == nil {
		static("https", leaves(s.https.srv.TLSConfig.Certificates))
		return out
	}
	iss := s.https.issuer
	iss.mu.Lock()
	held := make(map[string]hold, len(iss.held))
	for k, h := range iss.held {
		held[k] = h
	}
	iss.mu.Unlock()
	for name, leaf := range c.issued(filepath.Join(s.cfg.StateDir, "acme")) {
		ct := console.Certificate{Listener: "https", Subject: name, Issuer: leaf.Issuer.CommonName, NotAfter: leaf.NotAfter,
			State: "issued", Renewal: leaf.NotAfter.Add(-acmeRenewBefore)}
		if h, ok := held[name]; ok {
			ct.State, ct.Retry, ct.LastError = "failing", h.until, h.err.Error()
			delete(held, name)
		}
		out = append(out, ct)
	}
	for name, h := range held {
		out = append(out, console.Certificate{Listener: "https", Subject: name, State: "failing", Retry: h.until, LastError: h.err.Error()})
	}
	return out
}

func certSubject(l *x509.Certificate) string {
	if len(l.DNSNames) > 0 {
		return strings.Join(l.DNSNames, ", ")
	}
	if len(l.IPAddresses) > 0 {
		return l.IPAddresses[0].String()
	}
	return l.Subject.CommonName
}

// issued reads the certificates autocert stored in dir (one file per name,
// the key and the chain in PEM), re-parsing only files that changed.
func (c *consoleEdge) issued(dir string) map[string]*x509.Certificate {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := map[string]*x509.Certificate{}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, "acme_account") || strings.Contains(name, "+token") || strings.HasSuffix(name, "+rsa") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		cc, ok := c.certs[name]
		if !ok || !cc.mod.Equal(info.ModTime()) {
			cc = cachedCert{mod: info.ModTime(), leaf: readLeaf(filepath.Join(dir, name))}
			c.certs[name] = cc
		}
		if cc.leaf != nil {
			out[name] = cc.leaf
		}
	}
	return out
}

func readLeaf(file string) *x509.Certificate {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil
		}
		if b.Type == "CERTIFICATE" {
			l, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil
			}
			return l
		}
	}
}
