package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/crypto/acme/autocert"

	"github.com/sluicehq/sluice/fleet"
)

// ACME in a fleet: the account and the certificates are kept in the fleet's
// store, so a certificate one edge obtained serves on every edge, and an
// edge asks the CA only under a fleet-wide lock on the name: the others
// wait for its order and then read the certificate. Renewals read the
// store before they order (autocert does), so the edge that renews first
// renews for all. Each edge keeps a copy under its state directory and
// serves from it while the store does not answer.

// acmeLockTTL bounds how long an edge that died while ordering holds the
// others back; an order takes seconds.
const acmeLockTTL = 2 * time.Minute

// fleetCache is autocert's store in a fleet: the fleet's files first, the
// edge's own directory while the store does not answer.
type fleetCache struct {
	st    *fleet.Store
	local autocert.Cache
	log   *slog.Logger
}

func (c fleetCache) Get(ctx context.Context, key string) ([]byte, error) {
	data, err := c.st.ReadFile(ctx, "acme/"+key)
	switch {
	case err == nil:
		return data, nil
	case errors.Is(err, fleet.ErrNotFound):
		return nil, autocert.ErrCacheMiss
	}
	c.log.Warn("fleet: the store does not answer; serving the certificate store's local copy", "key", key, "err", err)
	return c.local.Get(ctx, key)
}

func (c fleetCache) Put(ctx context.Context, key string, data []byte) error {
	if err := c.local.Put(ctx, key, data); err != nil {
		c.log.Warn("the local copy of the certificate store could not be written", "key", key, "err", err)
	}
	return c.st.WriteFile(ctx, "acme/"+key, data)
}

func (c fleetCache) Delete(ctx context.Context, key string) error {
	c.local.Delete(ctx, key)
	return c.st.RemoveFile(ctx, "acme/"+key)
}

// fleetOrders makes the edges of a fleet order a name's certificate one at
// a time.
type fleetOrders struct {
	st *fleet.Store
	mu sync.Mutex
	// known are the names this edge served a certificate for: autocert
	// has them in memory, and the store is not asked again.
	known map[string]bool
}

// get runs getCert (autocert's GetCertificate) for a name this edge has
// no certificate for yet under the fleet's lock on the name: while another
// edge holds it, this one waits, then finds that edge's certificate in the
// store.
func (o *fleetOrders) get(name string, getCert func() (*tls.Certificate, error)) (*tls.Certificate, error) {
	o.mu.Lock()
	known := o.known[name]
	o.mu.Unlock()
	if known || name == "" {
		return getCert()
	}
	ctx, cancel := context.WithTimeout(context.Background(), acmeLockTTL+30*time.Second)
	defer cancel()
	for {
		unlock, err := o.st.Lock(ctx, "acme/"+name, acmeLockTTL)
		if errors.Is(err, fleet.ErrLocked) {
			if err := o.st.WaitUnlocked(ctx, "acme/"+name); err != nil {
				return nil, fmt.Errorf("certificate for %s: another edge of the fleet is obtaining it: %w", name, err)
			}
			continue
		}
		if err != nil {
			// Without the store there is no lock to take; a certificate
			// autocert has (in memory or the local copy) still serves.
			return getCert()
		}
		cert, err := getCert()
		unlock()
		if err == nil {
			o.mu.Lock()
			o.known[name] = true
			o.mu.Unlock()
		}
		return cert, err
	}
}
