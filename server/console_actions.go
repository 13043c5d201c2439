package server

import (
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/server/console"
)

// Disconnect implements console.Backend: it closes the session, and the
// agent reconnects as after any dropped connection.
func (c *consoleEdge) Disconnect(id string, by console.Actor) error {
	var found *agentConn
	c.s.sessions.Range(func(k, _ any) bool {
		if ac := k.(*agentConn); ac.id == id {
			found = ac
			return false
		}
		return true
	})
	closed := false
	if found != nil {
		select {
		case <-found.sess.Done():
			closed = true // on its way out of the table
		default:
		}
	}
	if found == nil || closed {
		return fmt.Errorf("session %s: %w (it disconnected already)", id, console.ErrNotFound)
	}
	found.log.Warn("the operator disconnected this agent session", "by", by.String())
	found.sess.Close()
	return nil
}

// RevokeToken implements console.Backend: the token leaves the tokens file
// (rewritten atomically, so a reload or restart keeps it out) and then the
// edge's table, closing its sessions as a reload that dropped it would.
func (c *consoleEdge) RevokeToken(id string, by console.Actor) error {
	s := c.s
	old := s.auth.Load()
	var target *rule
	for _, r := range old.rules {
		if tokenID(r.hash) == id && r.index > 0 {
			target = r
		}
	}
	if target == nil {
		for _, r := range old.rules {
			if tokenID(r.hash) == id {
				return fmt.Errorf("token %s is given in the edge's configuration, not its tokens file: remove it there and restart", id)
			}
		}
		return fmt.Errorf("token %s: %w (revoked already?)", id, console.ErrNotFound)
	}
	if s.cfg.TokensFile == "" {
		return errors.New("the edge was given its token rules without a tokens file to rewrite: remove the token where they come from")
	}
	removed, err := removeTokenFromFile(s.cfg.TokensFile, target.hash)
	if err != nil {
		return err
	}
	next := &authTable{}
	for _, r := range old.rules {
		if r.hash != target.hash {
			next.rules = append(next.rules, r)
		}
	}
	if !s.auth.CompareAndSwap(old, next) {
		return errors.New("the edge's tokens changed at the same moment (a reload): look again and retry")
	}
	closed := s.dropUnauthorized(next, "the edge's operator revoked this agent's token: get a current token")
	s.log.Warn("token revoked from the console", "token", id, "owner", target.ownerName, "by", by.String(),
		"tokens_file", s.cfg.TokensFile, "entries_removed", removed, "sessions_closed", closed)
	c.notify()
	return nil
}

// ReleaseLease implements console.Backend: the key is forgotten, here and
// in the lease store, if no agent holds it right now.
func (c *consoleEdge) ReleaseLease(key string, by console.Actor) error {
	r := c.s.reg
	r.mu.Lock()
	l, ok := r.leases[key]
	if !ok || l.ep != nil || !r.now().Before(l.until) {
		r.mu.Unlock()
		if ok && l.ep != nil {
			return fmt.Errorf("%s is in use by a connected agent: disconnect it first", keyLabel(key))
		}
		return fmt.Errorf("%s: %w (not held, or its grace ended)", keyLabel(key), console.ErrNotFound)
	}
	delete(r.leases, key)
	r.mu.Unlock()
	c.mu.Lock()
	delete(c.reclaims, key)
	c.mu.Unlock()
	if err := r.store.Delete(key); err != nil {
		return fmt.Errorf("%s released, but the lease store failed to forget it (it may return after a restart): %w", keyLabel(key), err)
	}
	c.s.log.Warn("lease released from the console", "address", keyLabel(key), "owner", l.rec.OwnerName, "by", by.String())
	c.notify()
	return nil
}
