package main

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/sluicehq/sluice/internal/cfgerr"
	"github.com/sluicehq/sluice/policy"
)

// policyFlags are a tunnel's traffic policy flags (sluice http, tcp, udp);
// the same names, - written _, are the keys of a `sluice start` tunnel.
type policyFlags struct {
	basicAuth, allowCIDR, denyCIDR, verifyWebhook       stringList
	oidcAllowEmail, oidcAllowDomain                     stringList
	reqAdd, reqRemove, resAdd, resRemove                stringList
	oidcIssuer, oidcClientID, oidcClientSecret, rateLim string
	file                                                string
}

func (f *policyFlags) register(fs *flag.FlagSet, http bool) {
	fs.Var(&f.allowCIDR, "allow-cidr", "accept clients only from this `CIDR` (IPv4 or IPv6; repeatable)")
	fs.Var(&f.denyCIDR, "deny-cidr", "refuse clients from this `CIDR` (repeatable; wins over --allow-cidr)")
	fs.StringVar(&f.rateLim, "rate-limit", "", "at most `N/DURATION` requests (http) or new connections per client address, e.g. 100/1m")
	fs.StringVar(&f.file, "policy", "", "traffic policy `file` (YAML rules with CEL conditions; see docs/POLICY.md)")
	if !http {
		return
	}
	fs.Var(&f.basicAuth, "basic-auth", "require `USER:PASS` (repeatable; @FILE reads user:bcrypt-hash lines, as htpasswd -B writes them)")
	fs.StringVar(&f.oidcIssuer, "oidc-issuer", "", "sign visitors in with this OpenID Connect provider `URL`")
	fs.StringVar(&f.oidcClientID, "oidc-client-id", "", "the OpenID Connect client `ID` issued for this tunnel")
	fs.StringVar(&f.oidcClientSecret, "oidc-client-secret", "", "the OpenID Connect client `secret` (env SLUICE_OIDC_CLIENT_SECRET)")
	fs.Var(&f.oidcAllowEmail, "oidc-allow-email", "let in only these `emails` (comma-separated or repeated)")
	fs.Var(&f.oidcAllowDomain, "oidc-allow-domain", "let in only emails of this `domain` (repeatable)")
	fs.Var(&f.verifyWebhook, "verify-webhook", "refuse requests whose signature does not verify: `PROVIDER:SECRET`, provider github, stripe, slack or hmac (X-Signature-256)")
	fs.Var(&f.reqAdd, "request-header-add", "set `NAME:VALUE` on requests to the app (repeatable)")
	fs.Var(&f.reqRemove, "request-header-remove", "remove header `NAME` from requests to the app (repeatable)")
	fs.Var(&f.resAdd, "response-header-add", "set `NAME:VALUE` on responses (repeatable)")
	fs.Var(&f.resRemove, "response-header-remove", "remove header `NAME` from responses (repeatable)")
}

func (f *policyFlags) simple() policy.Simple {
	return policy.Simple{
		BasicAuth: f.basicAuth, OIDCIssuer: f.oidcIssuer, OIDCClientID: f.oidcClientID, OIDCClientSecret: f.oidcClientSecret,
		OIDCAllowEmails: f.oidcAllowEmail, OIDCAllowDomains: f.oidcAllowDomain, AllowCIDRs: f.allowCIDR, DenyCIDRs: f.denyCIDR,
		RateLimit: f.rateLim, VerifyWebhooks: f.verifyWebhook, RequestHeaderAdd: f.reqAdd, RequestHeaderRemove: f.reqRemove,
		ResponseHeaderAdd: f.resAdd, ResponseHeaderRemove: f.resRemove, File: f.file,
	}
}

// policySpec builds a tunnel's policy; errors name the flag (or key) and,
// for a file, the line and the rule. nil when no policy flag is set.
func policySpec(s policy.Simple, kind string, keys bool) (*policy.Spec, error) {
	if s.Empty() {
		return nil, nil
	}
	spec, err := s.Spec()
	if err != nil {
		return nil, policyError(err, keys)
	}
	// Compiled here too, so a mistake stops the command before it dials.
	if _, err := policy.Compile(policy.Options{Kind: kind}, policy.Layer{Source: "policy", Spec: spec}); err != nil {
		return nil, usageError{err}
	}
	return spec, nil
}

// policyFlagOf names the flag of each policy.Simple field.
var policyFlagOf = map[string]string{
	"BasicAuth": "basic-auth", "OIDCIssuer": "oidc-issuer", "OIDCClientID": "oidc-client-id",
	"OIDCClientSecret": "oidc-client-secret", "OIDCAllowEmails": "oidc-allow-email", "OIDCAllowDomains": "oidc-allow-domain",
	"AllowCIDRs": "allow-cidr", "DenyCIDRs": "deny-cidr", "RateLimit": "rate-limit", "VerifyWebhooks": "verify-webhook",
	"RequestHeaderAdd": "request-header-add", "RequestHeaderRemove": "request-header-remove",
	"ResponseHeaderAdd": "response-header-add", "ResponseHeaderRemove": "response-header-remove",
}

func policyError(err error, keys bool) error {
	var cfe *cfgerr.Error
	if errors.As(err, &cfe) && cfe.Pkg == "policy" {
		field, _, _ := strings.Cut(cfe.Field, "[")
		if name, ok := policyFlagOf[field]; ok {
			if keys {
				return usagef("%s: %s", fileKey(name), cfe.Message())
			}
			return usagef("--%s: %s", name, cfe.Message())
		}
	}
	return usageError{err}
}

// startPolicy reads the policy keys of one `sluice start` tunnel; a policy
// file is relative to the config file.
func startPolicy(s tunnelSpec, configFile string) policy.Simple {
	file := s.Policy
	if file != "" && !filepath.IsAbs(file) {
		file = filepath.Join(filepath.Dir(configFile), file)
	}
	return policy.Simple{
		BasicAuth: s.BasicAuth, OIDCIssuer: s.OIDCIssuer, OIDCClientID: s.OIDCClientID, OIDCClientSecret: s.OIDCClientSecret,
		OIDCAllowEmails: s.OIDCAllowEmail, OIDCAllowDomains: s.OIDCAllowDomain, AllowCIDRs: s.AllowCIDR, DenyCIDRs: s.DenyCIDR,
		RateLimit: s.RateLimit, VerifyWebhooks: s.VerifyWebhook, RequestHeaderAdd: s.RequestHeaderAdd,
		RequestHeaderRemove: s.RequestHeaderRemove, ResponseHeaderAdd: s.ResponseHeaderAdd, ResponseHeaderRemove: s.ResponseHeaderRemove,
		File: file,
	}
}

// policyKey is what a tunnel's policy contributes to its identity in
// `sluice start`: a changed policy restarts the tunnel on reload.
func policyKey(spec *policy.Spec) string {
	if spec.Empty() {
		return ""
	}
	b, _ := json.Marshal(spec)
	return fmt.Sprintf("%x", sha256.Sum256(b))
}
