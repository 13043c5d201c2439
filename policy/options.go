package policy

import (
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/internal/cfgerr"
)

// Simple is a tunnel's policy as an agent's options give it, one field per
// kind of rule; Spec turns it into rules. Errors are *cfgerr.Error naming
// the field.
type Simple struct {
	// BasicAuth holds "user:password" or "user:BCRYPT-HASH" entries, or
	// "@FILE" for a file of user:bcrypt-hash lines.
	BasicAuth []string

	OIDCIssuer       string
	OIDCClientID     string
	OIDCClientSecret string
	OIDCAllowEmails  []string
	OIDCAllowDomains []string

	AllowCIDRs []string
	DenyCIDRs  []string
	// RateLimit is "N/DURATION" per client address.
	RateLimit string
	// VerifyWebhooks holds "PROVIDER:SECRET" entries.
	VerifyWebhooks []string

	RequestHeaderAdd     []string // "Name:Value"
	RequestHeaderRemove  []string
	ResponseHeaderAdd    []string // "Name:Value"
	ResponseHeaderRemove []string

	// File is a policy file whose rules follow those above.
	File string
}

// Empty reports whether no field is set.
func (s *Simple) Empty() bool {
	return len(s.BasicAuth) == 0 && s.OIDCIssuer == "" && s.OIDCClientID == "" && s.OIDCClientSecret == "" &&
		len(s.OIDCAllowEmails)+len(s.OIDCAllowDomains) == 0 && len(s.AllowCIDRs)+len(s.DenyCIDRs) == 0 &&
		s.RateLimit == "" && len(s.VerifyWebhooks) == 0 && len(s.RequestHeaderAdd)+len(s.RequestHeaderRemove) == 0 &&
		len(s.ResponseHeaderAdd)+len(s.ResponseHeaderRemove) == 0 && s.File == ""
}

func simpleErr(field, format string, args ...any) error {
	return cfgerr.New("policy", field, format, args...)
}

// Spec builds the rules: IP rules and the rate limit on connect, then
// webhook verification, basic auth, OpenID Connect and request headers,
// then response headers, then the file's rules.
func (s *Simple) Spec() (*Spec, error) {
	spec := &Spec{}
	if len(s.AllowCIDRs)+len(s.DenyCIDRs) > 0 {
		spec.OnTCPConnect = append(spec.OnTCPConnect, Rule{Name: "restrict-ips", Actions: []Action{
			{Type: "restrict-ips", Config: &RestrictIPs{Allow: s.AllowCIDRs, Deny: s.DenyCIDRs}}}})
		for i, c := range s.AllowCIDRs {
			if _, err := parsePrefix(c); err != nil {
				return nil, simpleErr(idx("AllowCIDRs", i), "%v", err)
			}
		}
		for i, c := range s.DenyCIDRs {
			if _, err := parsePrefix(c); err != nil {
				return nil, simpleErr(idx("DenyCIDRs", i), "%v", err)
			}
		}
	}
	if s.RateLimit != "" {
		if _, _, err := ParseRate(s.RateLimit); err != nil {
			return nil, simpleErr("RateLimit", "%v", err)
		}
		spec.OnTCPConnect = append(spec.OnTCPConnect, Rule{Name: "rate-limit", Actions: []Action{
			{Type: "rate-limit", Config: &RateLimit{Limit: s.RateLimit}}}})
	}
	for i, w := range s.VerifyWebhooks {
		prov, secret, ok := strings.Cut(w, ":")
		if !ok || prov == "" || secret == "" {
			return nil, simpleErr(idx("VerifyWebhooks", i), "%q is not PROVIDER:SECRET (github, stripe, slack or hmac)", prov)
		}
		spec.OnHTTPRequest = append(spec.OnHTTPRequest, Rule{Name: "verify-webhook " + prov, Actions: []Action{
			{Type: "verify-webhook", Config: &VerifyWebhook{Provider: prov, Secret: Secret(secret)}}}})
	}
	if len(s.BasicAuth) > 0 {
		ba := &BasicAuth{}
		for i, e := range s.BasicAuth {
			if file, ok := strings.CutPrefix(e, "@"); ok {
				creds, err := ReadHtpasswd(file)
				if err != nil {
					return nil, cfgerr.Wrap("policy", idx("BasicAuth", i), err)
				}
				ba.Credentials = append(ba.Credentials, creds...)
				continue
			}
			if u, p, ok := cutColon(e); !ok || u == "" || p == "" {
				return nil, simpleErr(idx("BasicAuth", i), "not USER:PASS (or @FILE of user:bcrypt-hash lines)")
			}
			ba.Credentials = append(ba.Credentials, Secret(e))
		}
		spec.OnHTTPRequest = append(spec.OnHTTPRequest, Rule{Name: "basic-auth", Actions: []Action{{Type: "basic-auth", Config: ba}}})
	}
	if s.OIDCIssuer != "" || s.OIDCClientID != "" || s.OIDCClientSecret != "" || len(s.OIDCAllowEmails)+len(s.OIDCAllowDomains) > 0 {
		if s.OIDCIssuer == "" {
			return nil, simpleErr("OIDCIssuer", "is empty: give the provider's issuer URL with the client ID")
		}
		if s.OIDCClientID == "" {
			return nil, simpleErr("OIDCClientID", "is empty: give the client ID the provider issued for this tunnel")
		}
		spec.OnHTTPRequest = append(spec.OnHTTPRequest, Rule{Name: "openid-connect", Actions: []Action{{Type: "openid-connect", Config: &OIDC{
			Issuer: s.OIDCIssuer, ClientID: s.OIDCClientID, ClientSecret: Secret(s.OIDCClientSecret),
			AllowEmails: splitList(s.OIDCAllowEmails), AllowDomains: splitList(s.OIDCAllowDomains)}}}})
	}
	var err error
	if spec.OnHTTPRequest, err = headerRules(spec.OnHTTPRequest, "request", "RequestHeaderAdd", s.RequestHeaderAdd, "RequestHeaderRemove", s.RequestHeaderRemove); err != nil {
		return nil, err
	}
	if spec.OnHTTPResponse, err = headerRules(spec.OnHTTPResponse, "response", "ResponseHeaderAdd", s.ResponseHeaderAdd, "ResponseHeaderRemove", s.ResponseHeaderRemove); err != nil {
		return nil, err
	}
	if s.File != "" {
		f, err := Load(s.File)
		if err != nil {
			return nil, err
		}
		spec.Append(f)
	}
	return spec, nil
}

func headerRules(rules []Rule, what, addField string, add []string, rmField string, rm []string) ([]Rule, error) {
	if len(add) > 0 {
		h := map[string]string{}
		for i, kv := range add {
			k, v, ok := strings.Cut(kv, ":")
			if !ok || strings.TrimSpace(k) == "" {
				return nil, simpleErr(idx(addField, i), "%q is not NAME:VALUE", kv)
			}
			h[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		rules = append(rules, Rule{Name: what + " headers added", Actions: []Action{{Type: "add-headers", Config: &AddHeaders{Headers: h}}}})
	}
	if len(rm) > 0 {
		rules = append(rules, Rule{Name: what + " headers removed", Actions: []Action{{Type: "remove-headers", Config: &RemoveHeaders{Headers: rm}}}})
	}
	return rules, nil
}

// splitList accepts both repeated values and comma-separated ones.
func splitList(in []string) []string {
	var out []string
	for _, v := range in {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func idx(field string, i int) string {
	return field + "[" + strconv.Itoa(i) + "]"
}
