package server

import (
	"github.com/sluicehq/sluice/internal/cfgerr"

	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/sluicehq/sluice/internal/statedir"
)

// errNotRegistered is why the edge refuses to obtain a certificate: no tunnel
// holds the name right now, so a stranger naming it in a TLS handshake
// cannot make the edge spend the CA's rate limit on it.
var errNotRegistered = errors.New("no tunnel is registered for this name")

// Hold times after a failed issuance: they double per failure up to the cap,
// and a CA's Retry-After stretches them further, so a broken name or a
// rate-limited account does not hammer the CA on every handshake.
const (
	firstIssueHold = time.Minute
	maxIssueHold   = 6 * time.Hour
)

// issuer obtains and renews certificates over ACME (autocert does the
// protocol, the storage under StateDir/acme and the renewals), on demand,
// for registered names only.
type issuer struct {
	m   *autocert.Manager
	reg *registry
	log *slog.Logger
	now func() time.Time

	fleet  *edgeFleet   // nil outside a fleet
	orders *fleetOrders // nil outside a fleet

	mu   sync.Mutex
	held map[string]hold // name → failure state
}

type hold struct {
	until time.Time
	wait  time.Duration
	err   error
}

func newIssuer(s *Server) (*issuer, error) {
	dir, err := statedir.Ensure(filepath.Join(s.cfg.StateDir, "acme"))
	if err != nil {
		return nil, cfgerr.Wrap("server", "StateDir", fmt.Errorf("cannot create the certificate store: %w", err))
	}
	client := &acme.Client{DirectoryURL: s.cfg.ACMEDirectory, UserAgent: Software}
	if s.cfg.ACMERoots != nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: s.cfg.ACMERoots}
		client.HTTPClient = &http.Client{Transport: tr, Timeout: time.Minute}
	}
	i := &issuer{reg: s.reg, log: s.log, now: time.Now, held: make(map[string]hold)}
	var cache autocert.Cache = autocert.DirCache(dir)
	if s.fleet != nil {
		i.fleet = s.fleet
		i.orders = &fleetOrders{st: s.fleet.store, known: map[string]bool{}}
		cache = fleetCache{st: s.fleet.store, local: cache, log: s.log}
	}
	i.m = &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      loggedCache{cache, s.log},
		HostPolicy: i.policy,
		Client:     client,
		Email:      s.cfg.ACMEEmail,
	}
	return i, nil
}

// policy allows a certificate only for a name a tunnel holds right now.
func (i *issuer) policy(_ context.Context, host string) error {
	name, err := routingHost(host)
	if err != nil {
		return err
	}
	if _, ok := i.reg.host(name); !ok && !i.fleetServes(name) {
		return fmt.Errorf("certificate for %s refused: %w", name, errNotRegistered)
	}
	return nil
}

// fleetServes reports whether an edge of the fleet holds a session for
// name: this edge forwards its requests there, so it serves its HTTPS too.
func (i *issuer) fleetServes(name string) bool {
	if i.fleet == nil {
		return false
	}
	l, ok := i.fleet.store.Lookup(hostKey(name))
	return ok && len(l.Holders) > 0
}

// getCertificate serves the TLS handshake: a stored certificate at once, a
// new one issued on the spot for a registered name, and an error without
// asking the CA for a name whose last attempt failed recently.
func (i *issuer) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
	i.mu.Lock()
	h, held := i.held[name]
	i.mu.Unlock()
	if held && i.now().Before(h.until) {
		return nil, fmt.Errorf("certificate for %s: the last attempt failed (%v); the edge tries again after %s", name, h.err, h.until.Format(time.RFC3339))
	}
	var cert *tls.Certificate
	var err error
	// The CA's own TLS-ALPN-01 handshake is answered from the challenge
	// the ordering edge stored; it must not wait for that edge's lock.
	if i.orders != nil && !slices.Contains(hello.SupportedProtos, acme.ALPNProto) {
		cert, err = i.orders.get(name, func() (*tls.Certificate, error) { return i.m.GetCertificate(hello) })
	} else {
		cert, err = i.m.GetCertificate(hello)
	}
	if err == nil {
		if held {
			i.mu.Lock()
			delete(i.held, name)
			i.mu.Unlock()
		}
		return cert, nil
	}
	if name == "" || errors.Is(err, errNotRegistered) || strings.HasPrefix(err.Error(), "acme/autocert: server name") {
		return nil, err // nothing was asked of the CA
	}
	i.fail(name, h, err)
	return nil, err
}

func (i *issuer) fail(name string, prev hold, err error) {
	now := i.now()
	wait := firstIssueHold
	if prev.wait > 0 {
		wait = min(2*prev.wait, maxIssueHold)
	}
	if d, ok := acme.RateLimit(err); ok && d > wait {
		wait = d
	}
	i.mu.Lock()
	for k, h := range i.held {
		// Only registered names get here, so the map stays small; expired
		// entries are dropped whenever one is added.
		if !now.Before(h.until.Add(maxIssueHold)) {
			delete(i.held, k)
		}
	}
	i.held[name] = hold{until: now.Add(wait), wait: wait, err: err}
	i.mu.Unlock()
	i.log.Warn("obtaining a certificate failed; holding off", "name", name, "err", err, "retry_in", wait)
}
