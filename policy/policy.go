package policy

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	errpage "github.com/sluicehq/sluice/internal/page"
)

// The tunnel kinds a policy is compiled for.
const (
	KindHTTP = "http"
	KindTCP  = "tcp"
	KindUDP  = "udp"
)

// Options are what Compile needs besides the specs. Zero fields get
// defaults.
type Options struct {
	// Kind is the tunnel's kind: KindHTTP, KindTCP or KindUDP.
	Kind string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// SessionKey seals OpenID Connect session cookies; sessions survive an
	// agent's reconnect when the edge passes the same key. Default: random.
	SessionKey []byte
	// HTTPClient talks to OpenID providers (default: one with a 10s
	// timeout).
	HTTPClient *http.Client
	// Page writes the policy's own answers (refusals, sign-in errors):
	// the edge passes its own, which answers gRPC calls with a gRPC
	// status. Default: the edge's HTML status page.
	Page func(w http.ResponseWriter, r *http.Request, code int, title, text string)
	// MaxClients bounds each per-address table (rate limits, failed
	// sign-ins): past it, entries whose state is spent are dropped, then
	// the oldest. Default 65536.
	MaxClients int
}

func (o *Options) withDefaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if len(o.SessionKey) == 0 {
		o.SessionKey = make([]byte, 32)
		_, _ = rand.Read(o.SessionKey)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Page == nil {
		o.Page = func(w http.ResponseWriter, _ *http.Request, code int, title, text string) {
			errpage.Write(w, code, title, text, footer)
		}
	}
	if o.MaxClients <= 0 {
		o.MaxClients = 65536
	}
	if o.Kind == "" {
		o.Kind = KindHTTP
	}
}

// Layer is one spec and who wrote it. Layers run in the order given to
// Compile, the operator's and owners' first, so an agent's rules can add
// checks but never skip theirs.
type Layer struct {
	// Source names the layer in errors and decisions: a file name,
	// "server", "owner NAME", "agent".
	Source string
	Spec   *Spec
	// Imposed marks the operator's and owners' layers: on a TCP or UDP
	// tunnel, their HTTP rules are skipped, but those that authenticate
	// (basic-auth, openid-connect, verify-webhook) refuse the tunnel: they
	// cannot be enforced there and must not be escaped by choosing another
	// kind.
	Imposed bool
}

// Policy is a compiled policy. It is safe for concurrent use.
type Policy struct {
	opts Options
	conn []*rule
	req  []*rule
	res  []*rule
	// stripIdentity is set when an openid-connect action can set the
	// identity headers: clients never set them themselves.
	stripIdentity bool
}

// rule is a compiled rule.
type rule struct {
	source  string
	name    string
	phase   Phase
	conds   []condition
	actions []compiled
}

// compiled is a compiled action. Each implements the methods of the
// phases it can run in: connAction, reqAction, resAction.
type compiled interface {
	kind() string
}

type connAction interface {
	conn(x *exchange) *Decision
}

type reqAction interface {
	request(x *exchange) *Decision
}

type resAction interface {
	response(h http.Header)
}

// Decision says that the policy answered a request or refused a
// connection itself, and which rule did. Nothing of it reaches the agent
// but the counters.
type Decision struct {
	Source string
	Rule   string
	Phase  Phase
	Action string
	// Status is the HTTP status written, 0 for a refused connection.
	Status int
	// Refused is false when the answer is part of the way to the app (a
	// redirect to sign in, the sign-in callback, a redirect or custom
	// response the policy asked for) and true when the client was kept
	// out.
	Refused bool
}

// Compile checks the layers and compiles them into one Policy. Errors are
// *Error and name the layer's source, the line, the phase and the rule.
func Compile(opts Options, layers ...Layer) (*Policy, error) {
	opts.withDefaults()
	if opts.Kind != KindHTTP && opts.Kind != KindTCP && opts.Kind != KindUDP {
		return nil, fmt.Errorf("policy: unknown tunnel kind %q", opts.Kind)
	}
	e, err := newEnvs()
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	p := &Policy{opts: opts}
	for _, l := range layers {
		if l.Spec == nil {
			continue
		}
		for _, ph := range l.Spec.phases() {
			for i := range ph.rules {
				r, err := p.compileRule(e, l, ph.phase, &ph.rules[i], i)
				if err != nil {
					return nil, err
				}
				if r == nil {
					continue
				}
				switch ph.phase {
				case OnTCPConnect:
					p.conn = append(p.conn, r)
				case OnHTTPRequest:
					p.req = append(p.req, r)
				case OnHTTPResponse:
					p.res = append(p.res, r)
				}
			}
		}
	}
	return p, nil
}

// guards lists the action types that say who may reach a tunnel at all
// and have no TCP or UDP equivalent: an imposed rule with one cannot be
// skipped on a tunnel where it cannot run. Other imposed HTTP rules (a
// path denied, a header set) mean nothing on a TCP tunnel and are skipped
// there.
var guards = map[string]bool{"basic-auth": true, "openid-connect": true, "verify-webhook": true}

func (p *Policy) compileRule(e *envs, l Layer, ph Phase, src *Rule, i int) (*rule, error) {
	label := src.label(i)
	fail := func(line int, format string, args ...any) error {
		return &Error{Source: l.Source, File: src.File, Line: line, Phase: ph, Rule: label, Reason: fmt.Sprintf(format, args...)}
	}
	if len(src.Actions) == 0 {
		return nil, fail(src.Line, "the rule has no actions")
	}
	if p.opts.Kind != KindHTTP && ph != OnTCPConnect {
		if !l.Imposed {
			return nil, fail(src.Line, "%s rules cannot run on a %s tunnel: use on_tcp_connect (restrict-ips, rate-limit, deny)", ph, p.opts.Kind)
		}
		for _, a := range src.Actions {
			if guards[a.Type] {
				return nil, fail(src.Line, "this %s rule guards access with %s, which cannot run on a %s tunnel: open an http tunnel instead", ph, a.Type, p.opts.Kind)
			}
		}
		return nil, nil
	}
	r := &rule{source: l.Source, name: label, phase: ph}
	env := e.forPhase(ph)
	for _, expr := range src.Expressions {
		c, err := compileCondition(env, expr)
		if err != nil {
			return nil, fail(src.Line, "%v", err)
		}
		r.conds = append(r.conds, c)
	}
	for _, a := range src.Actions {
		line := a.Line
		if line == 0 {
			line = src.Line
		}
		if a.err != nil {
			return nil, fail(line, "%v: this edge cannot enforce it (is it older than the agent?)", a.err)
		}
		c, err := p.compileAction(ph, a)
		if err != nil {
			return nil, fail(line, "%s: %v", a.Type, err)
		}
		if !canRun(c, ph) {
			return nil, fail(line, "%s cannot run in %s (%s)", a.Type, ph, phasesOf(a.Type))
		}
		r.actions = append(r.actions, c)
	}
	return r, nil
}

func canRun(c compiled, ph Phase) bool {
	switch ph {
	case OnTCPConnect:
		_, ok := c.(connAction)
		return ok
	case OnHTTPRequest:
		_, ok := c.(reqAction)
		return ok
	default:
		_, ok := c.(resAction)
		return ok
	}
}

func phasesOf(typ string) string {
	switch typ {
	case "restrict-ips", "rate-limit", "deny":
		return "it runs in on_tcp_connect and on_http_request"
	case "add-headers", "remove-headers":
		return "it runs in on_http_request and on_http_response"
	}
	return "it runs in on_http_request"
}

func (p *Policy) compileAction(ph Phase, a Action) (compiled, error) {
	switch c := a.Config.(type) {
	case *BasicAuth:
		return newBasicAuth(p, c)
	case *OIDC:
		o, err := newOIDC(p, c)
		if err == nil {
			p.stripIdentity = true
		}
		return o, err
	case *RestrictIPs:
		return newRestrictIPs(c)
	case *RateLimit:
		return newRateLimit(p, c)
	case *VerifyWebhook:
		return newWebhook(p, c)
	case *AddHeaders:
		return newAddHeaders(c, ph)
	case *RemoveHeaders:
		return newRemoveHeaders(c, ph)
	case *Deny:
		return newDeny(c)
	case *Redirect:
		return newRedirect(c)
	case *CustomResponse:
		return newCustomResponse(c)
	case *URLRewrite:
		return newURLRewrite(c)
	case nil:
		return nil, fmt.Errorf("no config")
	}
	return nil, fmt.Errorf("unknown action config %T", a.Config)
}

// Empty reports whether the policy has no rules at all: the edge can skip
// calling it.
func (p *Policy) Empty() bool {
	return p == nil || len(p.conn)+len(p.req)+len(p.res) == 0 && !p.stripIdentity
}

// HasConnRules reports whether Conn can refuse anything.
func (p *Policy) HasConnRules() bool { return p != nil && len(p.conn) > 0 }

// exchange is one connection or request on its way through the rules.
type exchange struct {
	p      *Policy
	in     input
	w      http.ResponseWriter
	r      *http.Request
	rule   *rule
	action string
}

// decide records that the current action answered with status.
func (x *exchange) decide(status int, refused bool) *Decision {
	return &Decision{Source: x.rule.source, Rule: x.rule.name, Phase: x.rule.phase, Action: x.action, Status: status, Refused: refused}
}

// matches evaluates a rule's conditions. An error in one (a missing map
// key, say) is reported as an error: the rule's intent is unknown, so the
// caller refuses rather than guess.
func (x *exchange) matches(r *rule) (bool, error) {
	for _, c := range r.conds {
		if c.fast != nil {
			if !c.fast(&x.in) {
				return false, nil
			}
			continue
		}
		v, _, err := c.prg.Eval(&x.in)
		if err != nil {
			return false, err
		}
		if b, ok := v.Value().(bool); !ok || !b {
			return false, nil
		}
	}
	return true, nil
}

// Conn runs the on_tcp_connect rules for a new TCP connection or UDP
// flow from client. It returns nil to let it through.
func (p *Policy) Conn(client netip.AddrPort) *Decision {
	if p == nil || len(p.conn) == 0 {
		return nil
	}
	x := exchange{p: p, in: input{client: unmapAP(client), now: p.opts.Now()}}
	for _, r := range p.conn {
		x.rule = r
		ok, err := x.matches(r)
		if err != nil {
			x.action = "condition"
			return x.decide(0, true)
		}
		if !ok {
			continue
		}
		for _, a := range r.actions {
			x.action = a.kind()
			if d := a.(connAction).conn(&x); d != nil {
				return d
			}
		}
	}
	return nil
}

func unmapAP(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
