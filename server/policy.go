package server

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/policy"
	"github.com/sluicehq/sluice/server/console"
)

// The policy hook: every public request and connection passes admit once,
// after the edge knows which tunnel it is for and before a stream to the
// tunnel's agent is opened. ServeHTTP (HTTP and HTTPS), handleTCP and a UDP
// flow's first datagram are its only callers, so a rule written here holds
// for every kind of public address, and a refused client costs the agent
// nothing.

// access is one public request or connection about to reach a tunnel.
type access struct {
	t *tunnel
	// remote is the public client's address for TCP and UDP, as the edge
	// sees it (after a load balancer's PROXY header).
	remote netip.AddrPort
	// r and w are the request and its response, for HTTP tunnels; r's
	// RemoteAddr names the client (see httpClient for trusted proxies).
	r *http.Request
	w http.ResponseWriter
}

// admit runs the tunnel's policy on a. It returns false when the policy
// answered the request itself (the response is written) or refused the
// connection or datagram (the caller closes or drops it). On true, an HTTP
// request goes on with the returned writer, which applies the policy's
// response rules.
func (s *Server) admit(a access) (http.ResponseWriter, bool) {
	p := a.t.policy.Load()
	if p == nil {
		return a.w, true
	}
	var d *policy.Decision
	w := a.w
	if a.r != nil {
		w, d = p.Request(a.w, a.r, s.httpClient(a.r))
	} else {
		d = p.Conn(a.remote)
	}
	if d == nil {
		return w, true
	}
	if d.Refused {
		s.policyRefused(a, d)
	}
	return nil, false
}

// httpClient is the real client of a request: the peer, or, when the peer
// is a trusted proxy, the first address in X-Forwarded-For that no trusted
// proxy vouches for. (A load balancer's PROXY header has already replaced
// the peer.)
func (s *Server) httpClient(r *http.Request) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(r.RemoteAddr)
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if len(s.cfg.TrustedProxies) == 0 || !s.trusted(ap.Addr()) {
		return ap
	}
	c := s.clientOf(r.Header.Values("X-Forwarded-For"), ap.Addr())
	if c == ap.Addr() {
		return ap
	}
	return netip.AddrPortFrom(c, 0)
}

// policyRefused counts a refusal and queues it for the agent.
func (s *Server) policyRefused(a access, d *policy.Decision) {
	if s.metrics != nil {
		s.metrics.policy.WithLabelValues(string(a.t.kind), d.Source, d.Action).Inc()
	}
	client := a.remote.Addr()
	if a.r != nil {
		client = s.httpClient(a.r).Addr()
	}
	s.consoleRefused(console.RefusedPolicy, fmt.Sprintf("%s rule %q (%s) refused a client of %s", d.Source, d.Rule, d.Action, a.t.url), sourceIP(net.TCPAddrFromAddrPort(netip.AddrPortFrom(client, 0))))
	if a.t.refusals == nil {
		return
	}
	ev := control.PolicyRefused{Tunnel: a.t.id, Source: d.Source, Rule: d.Rule, Action: d.Action, Status: d.Status, Count: 1}
	if a.r != nil {
		ev.Method, ev.Path = a.r.Method, a.r.URL.Path
		ev.Client = s.httpClient(a.r).Addr().String()
	} else {
		ev.Client = a.remote.Addr().String()
	}
	a.t.refusals.add(a.t.ac, ev)
}

// refusalBatch is how long refusals of one rule are gathered into one
// message to the agent: a client hammering a tunnel costs the agent a
// message a second, not one per request.
const refusalBatch = time.Second

// refusals batches a tunnel's refusal events for its agent.
type refusals struct {
	mu      sync.Mutex
	pending map[string]*control.PolicyRefused
	order   []string
	timer   *time.Timer
}

func (q *refusals) add(ac *agentConn, ev control.PolicyRefused) {
	key := ev.Source + "\x00" + ev.Rule + "\x00" + ev.Action
	q.mu.Lock()
	defer q.mu.Unlock()
	if p, ok := q.pending[key]; ok {
		p.Count++
		return
	}
	if q.pending == nil {
		q.pending = make(map[string]*control.PolicyRefused)
	}
	q.pending[key] = &ev
	q.order = append(q.order, key)
	if q.timer == nil {
		q.timer = time.AfterFunc(refusalBatch, func() { q.flush(ac) })
	}
}

func (q *refusals) flush(ac *agentConn) {
	q.mu.Lock()
	evs := make([]control.PolicyRefused, 0, len(q.order))
	for _, k := range q.order {
		evs = append(evs, *q.pending[k])
	}
	clear(q.pending)
	q.order, q.timer = q.order[:0], nil
	q.mu.Unlock()
	for _, ev := range evs {
		select {
		case <-ac.sess.Done():
			return
		default:
		}
		if err := ac.write(ev); err != nil {
			return
		}
	}
}

// compilePolicy compiles the policy a tunnel runs under: the edge's, its
// owner's and the one the agent sent. A policy the edge cannot enforce is
// refused naming the rule. It returns the summary Assigned echoes.
func (ac *agentConn) compilePolicy(t *tunnel, r control.Register) (string, *control.Error) {
	if len(r.Policy) > 0 {
		t.agentPolicy = new(policy.Spec)
		if err := json.Unmarshal(r.Policy, t.agentPolicy); err != nil {
			return "", regError(r.Ref, control.CodeBadRequest, "the tunnel's policy is malformed: %v", err)
		}
	}
	if r.PolicyEvents {
		t.refusals = &refusals{}
	}
	if err := ac.applyPolicy(t, ac.currentRule()); err != nil {
		return "", regError(r.Ref, control.CodeBadRequest, "the edge cannot enforce this tunnel's policy: %v", err)
	}
	ps := t.policy.Load()
	if ps == nil {
		return "", nil
	}
	return ps.summary, nil
}

// applyPolicy compiles t's layers as they are now (at registration, and
// again when a reload changed the edge's or the owner's rules).
func (ac *agentConn) applyPolicy(t *tunnel, rule *rule) error {
	s := ac.s
	layers := []policy.Layer{
		{Source: "server", Spec: s.policy.Load(), Imposed: true},
		{Source: "owner " + rule.ownerName, Spec: rule.policy, Imposed: true},
		{Source: "agent", Spec: t.agentPolicy},
	}
	var summary []string
	for _, l := range layers {
		if !l.Spec.Empty() {
			summary = append(summary, l.Source+" {"+l.Spec.Summary()+"}")
		}
	}
	if len(summary) == 0 {
		t.policy.Store(nil)
		return nil
	}
	p, err := policy.Compile(policy.Options{Kind: string(t.kind), SessionKey: s.policyKey[:], Page: page}, layers...)
	if err != nil {
		return err
	}
	t.policy.Store(&tunnelPolicy{Policy: p, summary: strings.Join(summary, "; ")})
	return nil
}

// tunnelPolicy is a tunnel's compiled policy and its summary.
type tunnelPolicy struct {
	*policy.Policy
	summary string
}

// reapplyPolicies recompiles every live tunnel's policy after a reload:
// tightened rules hold at once. A tunnel whose policy no longer compiles
// (an owner's new sign-in rule on a TCP tunnel) ends its session, naming
// the rule.
func (s *Server) reapplyPolicies() {
	s.sessions.Range(func(k, _ any) bool {
		ac := k.(*agentConn)
		ac.mu.Lock()
		ts := slices.Clone(ac.tunnels)
		ac.mu.Unlock()
		for _, t := range ts {
			if err := ac.applyPolicy(t, ac.currentRule()); err != nil {
				ac.revoke(control.CodeForbidden, fmt.Sprintf("the edge's policy changed and cannot be enforced on %s: %v", t.url, err))
				break
			}
		}
		return true
	})
}

// checkImposedPolicy checks an operator's or owner's policy once for each
// kind of tunnel it may guard, so a mistake is an error at start-up or
// reload, not a refused registration.
func checkImposedPolicy(source string, spec *policy.Spec) error {
	if spec.Empty() {
		return nil
	}
	_, err := policy.Compile(policy.Options{Kind: policy.KindHTTP}, policy.Layer{Source: source, Spec: spec, Imposed: true})
	return err
}

// addrPortOf is a connection's address as a netip.AddrPort (zero when it
// has none).
func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// policySummary is the tunnel's policy summary for the admin listing.
func (t *tunnel) policySummary() string {
	if p := t.policy.Load(); p != nil {
		return p.summary
	}
	return ""
}
