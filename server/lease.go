package server

import (
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/sluicehq/sluice/server/leasestore"
)

// DefaultReclaimGrace is how long a lease outlives its agent by default: a
// laptop closed for the night, or an edge restarted for an upgrade, still
// finds its URL — random names and ports included — the next morning.
// Other owners are refused the name meanwhile; the name space of random
// names (about 2^17) and ports is large enough to hold a day's leases.
const DefaultReclaimGrace = 24 * time.Hour

// leaseFile returns the file under stateDir that holds the leases of the
// edge whose agents connect to listen; "" when listen has no fixed port,
// since an edge on a random port has no identity to come back to.
func leaseFile(stateDir, listen string) string {
	_, port, err := net.SplitHostPort(listen)
	if stateDir == "" || err != nil || port == "" || port == "0" {
		return ""
	}
	return filepath.Join(stateDir, "leases-"+port+".json")
}

// openRegistry opens the lease store of the state directory and loads it.
func (s *Server) openRegistry() (*registry, error) {
	saveFailed := func(err error) {
		s.log.Error("saving a lease failed: an edge restart may lose it", "err", err)
	}
	var store leasestore.Store
	if s.fleet != nil {
		store = fleetLeases{s.fleet.store}
	} else if file := leaseFile(s.cfg.StateDir, s.cfg.Listen); file != "" {
		f, err := leasestore.OpenFile(file)
		if err != nil {
			return nil, fmt.Errorf("server: state directory %s: %w: give each edge its own state directory", s.cfg.StateDir, err)
		}
		f.OnError = saveFailed
		store = f
	} else if s.cfg.StateDir != "" {
		s.log.Warn("leases kept in memory only: the agent address has no fixed port", "listen", s.cfg.Listen)
	}
	reg, err := newRegistry(s.cfg.ReclaimGrace, store)
	if err != nil {
		if store != nil {
			store.Close()
		}
		return nil, fmt.Errorf("server: loading leases: %w", err)
	}
	reg.onErr = saveFailed
	if s.fleet != nil {
		reg.fleet = s.fleet.store
	}
	if n := reg.leaseCount(); n > 0 {
		s.log.Info("leases loaded", "count", n, "state_dir", s.cfg.StateDir)
	}
	return reg, nil
}
