package server

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/control"
)

// Reload applies what can change without a restart from cfg: the tokens and
// token rules, the limits, the reclaim grace and the traffic policies (the
// edge's and the owners', applied to the tunnels already online too). Sessions whose token is no
// longer accepted are told and closed; every other session is untouched.
// Settings that need a restart (addresses, domain, TLS, state directory) are
// listed in the returned note when they differ. On error nothing changes.
func (s *Server) Reload(cfg Config) (note string, err error) {
	if len(cfg.Tokens) == 0 && len(cfg.TokenRules) == 0 {
		return "", fmt.Errorf("server: reload: no token configured: the old configuration stays")
	}
	for _, tok := range cfg.Tokens {
		if tok == "" {
			return "", fmt.Errorf("server: reload: an empty token is not allowed: the old configuration stays")
		}
	}
	auth, err := newAuthTable(cfg.Tokens, cfg.TokenRules, s.cfg.Domain)
	if err != nil {
		return "", fmt.Errorf("server: reload: %w: the old configuration stays", err)
	}
	if err := checkImposedPolicy("server", cfg.Policy); err != nil {
		return "", fmt.Errorf("server: reload: policy: %w: the old configuration stays", err)
	}
	var restart []string
	for _, f := range []struct {
		name     string
		old, new string
	}{
		{"Listen", s.cfg.Listen, cfg.Listen},
		{"HTTP", s.cfg.HTTP, cfg.HTTP},
		{"Domain", s.cfg.Domain, cfg.Domain},
		{"StateDir", s.cfg.StateDir, cfg.StateDir},
		{"TCPHost", s.cfg.TCPHost, cfg.TCPHost},
	} {
		if f.new != "" && f.new != f.old {
			restart = append(restart, f.name)
		}
	}
	lim := cfg.Limits
	lim.setDefaults()
	s.lim.Store(&lim)
	s.auth.Store(auth)
	if cfg.ReclaimGrace != 0 {
		s.reg.setGrace(cfg.ReclaimGrace)
	}
	closed := s.dropUnauthorized(auth, "the edge's operator removed this agent's token: get a current token")
	s.policy.Store(cfg.Policy)
	s.reapplyPolicies()
	if len(restart) > 0 {
		slices.Sort(restart)
		note = "changed settings that take effect only after a restart: " + strings.Join(restart, ", ")
	}
	s.log.Info("configuration reloaded", "tokens", len(auth.rules), "sessions_closed", closed)
	return note, nil
}

// dropUnauthorized closes the sessions whose token auth no longer accepts
// and moves the others onto auth's rules. It returns how many it closed.
func (s *Server) dropUnauthorized(auth *authTable, why string) int {
	closed := 0
	s.sessions.Range(func(k, _ any) bool {
		ac := k.(*agentConn)
		if r := auth.lookup(ac.currentRule().hash); r != nil {
			ac.rulep.Store(r)
			return true
		}
		closed++
		ac.revoke(control.CodeRevoked, why)
		return true
	})
	s.consoleChanged()
	return closed
}
