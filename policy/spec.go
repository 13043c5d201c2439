package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// Phase is when a rule runs.
type Phase string

// The phases. on_tcp_connect rules see only the connection (conn.*, time.now);
// on an HTTP tunnel they run for every request before on_http_request.
const (
	OnTCPConnect   Phase = "on_tcp_connect"
	OnHTTPRequest  Phase = "on_http_request"
	OnHTTPResponse Phase = "on_http_response"
)

// Spec is a policy as written. Its JSON form is what an agent sends in its
// registration; its YAML form is the policy file (see Load).
type Spec struct {
	OnTCPConnect   []Rule `json:"on_tcp_connect,omitempty"`
	OnHTTPRequest  []Rule `json:"on_http_request,omitempty"`
	OnHTTPResponse []Rule `json:"on_http_response,omitempty"`
}

// Empty reports whether the spec has no rules.
func (s *Spec) Empty() bool {
	return s == nil || len(s.OnTCPConnect)+len(s.OnHTTPRequest)+len(s.OnHTTPResponse) == 0
}

// Append adds o's rules after s's, phase by phase.
func (s *Spec) Append(o *Spec) {
	if o == nil {
		return
	}
	s.OnTCPConnect = append(s.OnTCPConnect, o.OnTCPConnect...)
	s.OnHTTPRequest = append(s.OnHTTPRequest, o.OnHTTPRequest...)
	s.OnHTTPResponse = append(s.OnHTTPResponse, o.OnHTTPResponse...)
}

func (s *Spec) phases() [3]struct {
	phase Phase
	rules []Rule
} {
	return [3]struct {
		phase Phase
		rules []Rule
	}{{OnTCPConnect, s.OnTCPConnect}, {OnHTTPRequest, s.OnHTTPRequest}, {OnHTTPResponse, s.OnHTTPResponse}}
}

// Redacted returns a copy of s whose secrets (passwords, webhook and client
// secrets) are replaced by "[redacted]", for admin views and logs.
func (s *Spec) Redacted() *Spec {
	if s == nil {
		return nil
	}
	b, _ := json.Marshal(s)
	var c Spec
	_ = json.Unmarshal(b, &c)
	for _, ph := range c.phases() {
		for i := range ph.rules {
			for j := range ph.rules[i].Actions {
				if r, ok := ph.rules[i].Actions[j].Config.(redactor); ok {
					r.redact()
				}
			}
		}
	}
	return &c
}

type redactor interface{ redact() }

// LogValue logs the spec as its Summary, never its secrets.
func (s *Spec) LogValue() slog.Value { return slog.StringValue(s.Summary()) }

// Summary lists each phase's rules and their action types, e.g.
// "on_http_request: office[restrict-ips] #2[basic-auth]".
func (s *Spec) Summary() string {
	if s.Empty() {
		return "none"
	}
	var b bytes.Buffer
	for _, ph := range s.phases() {
		if len(ph.rules) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(string(ph.phase) + ":")
		for i, r := range ph.rules {
			b.WriteString(" " + r.label(i) + "[")
			for j, a := range r.Actions {
				if j > 0 {
					b.WriteString(",")
				}
				b.WriteString(a.Type)
			}
			b.WriteString("]")
		}
	}
	return b.String()
}

// label is the rule's name, or "#N" (its 1-based position in its phase).
func (r *Rule) label(i int) string {
	if r.Name != "" {
		return r.Name
	}
	return fmt.Sprintf("#%d", i+1)
}

// Rule is one rule: when all its expressions are true (or it has none), its
// actions run in order.
type Rule struct {
	// Name names the rule in errors, logs and the inspector; a rule without
	// one is called by its phase and position.
	Name        string   `json:"name,omitempty"`
	Expressions []string `json:"expressions,omitempty"`
	Actions     []Action `json:"actions"`
	// File and Line are where the rule starts in its file (empty when it
	// did not come from a file), for errors.
	File string `json:"-"`
	Line int    `json:"-"`
}

// Action is one action of a rule: its type and the config of that type
// (*BasicAuth, *RestrictIPs, ...).
type Action struct {
	Type   string
	Config any
	// Line is where the action starts in its file.
	Line int
	// err keeps why the wire form could not be read (an unknown type or
	// field, from a newer agent), so Compile refuses the rule by name
	// instead of the whole registration failing to decode.
	err error
}

type actionWire struct {
	Type   string          `json:"type"`
	Config json.RawMessage `json:"config,omitempty"`
}

// MarshalJSON writes {"type": ..., "config": {...}}.
func (a Action) MarshalJSON() ([]byte, error) {
	var cfg json.RawMessage
	if a.Config != nil {
		b, err := json.Marshal(a.Config)
		if err != nil {
			return nil, err
		}
		cfg = b
	}
	return json.Marshal(actionWire{Type: a.Type, Config: cfg})
}

// UnmarshalJSON reads what MarshalJSON wrote. An unknown type or config
// field is kept as an error for Compile to report.
func (a *Action) UnmarshalJSON(b []byte) error {
	var w actionWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	a.Type = w.Type
	a.Config, a.err = nil, nil
	mk, ok := actionTypes[w.Type]
	if !ok {
		a.err = fmt.Errorf("action type %q is unknown (known: %s)", w.Type, knownActions())
		return nil
	}
	cfg := mk()
	if len(w.Config) > 0 && !bytes.Equal(w.Config, []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(w.Config))
		dec.DisallowUnknownFields()
		if err := dec.Decode(cfg); err != nil {
			a.err = fmt.Errorf("%s: %w", w.Type, err)
			return nil
		}
	}
	a.Config = cfg
	return nil
}

// actionTypes makes an empty config of each action type.
var actionTypes = map[string]func() any{
	"basic-auth":      func() any { return new(BasicAuth) },
	"openid-connect":  func() any { return new(OIDC) },
	"restrict-ips":    func() any { return new(RestrictIPs) },
	"rate-limit":      func() any { return new(RateLimit) },
	"verify-webhook":  func() any { return new(VerifyWebhook) },
	"add-headers":     func() any { return new(AddHeaders) },
	"remove-headers":  func() any { return new(RemoveHeaders) },
	"deny":            func() any { return new(Deny) },
	"redirect":        func() any { return new(Redirect) },
	"custom-response": func() any { return new(CustomResponse) },
	"url-rewrite":     func() any { return new(URLRewrite) },
}

var actionOrder = []string{"basic-auth", "openid-connect", "restrict-ips", "rate-limit", "verify-webhook",
	"add-headers", "remove-headers", "deny", "redirect", "custom-response", "url-rewrite"}

func knownActions() string {
	var b bytes.Buffer
	for i, t := range actionOrder {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(t)
	}
	return b.String()
}

// BasicAuth asks for a user name and password (HTTP 401 with a realm until
// they match).
type BasicAuth struct {
	Realm string `json:"realm,omitempty"`
	// Credentials are "user:password" or "user:BCRYPT-HASH" ($2a$, $2b$ or
	// $2y$, as htpasswd -B writes them).
	Credentials []Secret `json:"credentials"`
}

func (b *BasicAuth) redact() {
	for i, c := range b.Credentials {
		user, _, _ := cutColon(string(c))
		b.Credentials[i] = Secret(user + ":" + redactedText)
	}
}

// OIDC signs visitors in with an OpenID Connect provider (authorization
// code flow with PKCE) and keeps them signed in with a session cookie.
type OIDC struct {
	Issuer       string   `json:"issuer"`
	ClientID     string   `json:"client_id"`
	ClientSecret Secret   `json:"client_secret,omitempty"`
	Scopes       []string `json:"scopes,omitempty"`
	AllowEmails  []string `json:"allow_emails,omitempty"`
	AllowDomains []string `json:"allow_domains,omitempty"`
	// SessionDuration is how long a sign-in lasts (default 12h).
	SessionDuration Duration `json:"session_duration,omitempty"`
}

func (o *OIDC) redact() {
	if o.ClientSecret != "" {
		o.ClientSecret = redactedText
	}
}

// RestrictIPs lets through only client addresses in Allow (when it is not
// empty) and not in Deny. Entries are CIDRs or single addresses, IPv4 or
// IPv6.
type RestrictIPs struct {
	Allow []string `json:"allow,omitempty"`
	Deny  []string `json:"deny,omitempty"`
}

// RateLimit lets each client address make Limit requests (or, on a TCP or
// UDP tunnel, open Limit connections) per period: "N/DURATION", e.g.
// "100/1m". Burst defaults to N.
type RateLimit struct {
	Limit string `json:"limit"`
	Burst int    `json:"burst,omitempty"`
}

// VerifyWebhook refuses requests whose body does not carry a valid
// signature of the provider (github, stripe, slack or hmac).
type VerifyWebhook struct {
	Provider string `json:"provider"`
	Secret   Secret `json:"secret"`
	// Tolerance bounds the age of a signed timestamp (stripe, slack;
	// default 5m): older requests are replays.
	Tolerance Duration `json:"tolerance,omitempty"`
	// Header carries the signature for the hmac provider (default
	// X-Signature-256): the hex HMAC-SHA256 of the body, optionally with a
	// "sha256=" prefix.
	Header string `json:"header,omitempty"`
}

func (v *VerifyWebhook) redact() {
	if v.Secret != "" {
		v.Secret = redactedText
	}
}

// AddHeaders sets headers on the request (on_http_request) or the response
// (on_http_response).
type AddHeaders struct {
	Headers map[string]string `json:"headers"`
}

// RemoveHeaders removes headers from the request or the response.
type RemoveHeaders struct {
	Headers []string `json:"headers"`
}

// Deny refuses the request (HTTP, default 403) or the connection.
type Deny struct {
	Status int `json:"status,omitempty"`
}

// Redirect answers with a redirect. When From (an RE2 regular expression
// over the path and query) is set, To may use its groups ($1); a request
// whose path does not match passes on.
type Redirect struct {
	From   string `json:"from,omitempty"`
	To     string `json:"to"`
	Status int    `json:"status,omitempty"`
}

// CustomResponse answers the request with a fixed response.
type CustomResponse struct {
	Status  int               `json:"status,omitempty"`
	Body    string            `json:"body,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
}

// URLRewrite rewrites the path and query the app sees: From is an RE2
// regular expression over them, To its replacement ($1 for groups).
type URLRewrite struct {
	From string `json:"from"`
	To   string `json:"to"`
}

const redactedText = "[redacted]"

// Secret is a password or key. It prints as "[redacted]" in fmt and slog;
// only its JSON form (the registration) carries it.
type Secret string

func (Secret) String() string       { return redactedText }
func (Secret) GoString() string     { return redactedText }
func (Secret) LogValue() slog.Value { return slog.StringValue(redactedText) }
func (s Secret) reveal() string     { return string(s) }

// Duration is a time.Duration written as "5m" or "90s".
type Duration time.Duration

// MarshalText writes d as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads "5m", "1h30m", "90s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (write it like 90s, 5m or 12h)", b)
	}
	if v < 0 {
		return fmt.Errorf("%q is negative", b)
	}
	*d = Duration(v)
	return nil
}

func cutColon(s string) (before, after string, ok bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
