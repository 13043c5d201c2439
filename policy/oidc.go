package policy

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// The sign-in endpoints on every host an openid-connect action guards.
const (
	OIDCCallbackPath = ReservedPrefix + "oidc/callback"
	OIDCLogoutPath   = ReservedPrefix + "oidc/logout"
)

const (
	sessionCookie      = "_sluice_session"
	stateCookie        = "_sluice_oidc_state"
	stateTTL           = 10 * time.Minute
	defaultSessionTTL  = 12 * time.Hour
	providerRetryAfter = 5 * time.Second
)

type oidcAction struct {
	p            *Policy
	issuer       string
	clientID     string
	secret       string
	scopes       []string
	allowEmails  map[string]bool
	allowDomains map[string]bool
	ttl          time.Duration
	seal         *sealer

	mu       sync.Mutex
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	failedAt time.Time
	lastErr  error
}

func newOIDC(p *Policy, c *OIDC) (*oidcAction, error) {
	u, err := url.Parse(c.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("issuer %q is not an http(s) URL", c.Issuer)
	}
	if c.ClientID == "" {
		return nil, fmt.Errorf("client_id is empty: give the client ID the provider issued for this tunnel")
	}
	o := &oidcAction{
		p: p, issuer: c.Issuer, clientID: c.ClientID, secret: c.ClientSecret.reveal(),
		scopes:       []string{oidc.ScopeOpenID, "email", "profile"},
		allowEmails:  map[string]bool{},
		allowDomains: map[string]bool{},
		ttl:          time.Duration(c.SessionDuration),
	}
	if len(c.Scopes) > 0 {
		o.scopes = append([]string{oidc.ScopeOpenID}, c.Scopes...)
	}
	if o.ttl == 0 {
		o.ttl = defaultSessionTTL
	}
	for i, e := range c.AllowEmails {
		e = strings.ToLower(strings.TrimSpace(e))
		if !strings.Contains(e, "@") {
			return nil, fmt.Errorf("allow_emails[%d]: %q is not an email address", i, c.AllowEmails[i])
		}
		o.allowEmails[e] = true
	}
	for i, d := range c.AllowDomains {
		d = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "@"))
		if d == "" || strings.ContainsAny(d, "@/ ") {
			return nil, fmt.Errorf("allow_domains[%d]: %q is not a domain", i, c.AllowDomains[i])
		}
		o.allowDomains[d] = true
	}
	o.seal, err = newSealer(p.opts.SessionKey, "openid-connect", c.Issuer, c.ClientID, o.secret)
	if err != nil {
		return nil, err
	}
	return o, nil
}

func (*oidcAction) kind() string { return "openid-connect" }

// session is what the session cookie holds.
type session struct {
	Email   string `json:"e"`
	Subject string `json:"s"`
	Name    string `json:"n,omitempty"`
	Expires int64  `json:"x"`
}

// flow is what the state cookie holds between the redirect to the
// provider and the callback.
type flow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Return   string `json:"r"`
	Expires  int64  `json:"x"`
}

func (o *oidcAction) request(x *exchange) *Decision {
	switch x.r.URL.Path {
	case OIDCCallbackPath:
		return o.callback(x)
	case OIDCLogoutPath:
		o.clearCookie(x, sessionCookie, "/")
		return o.page(x, http.StatusOK, false, "Signed out", "You are signed out of "+x.r.Host+". You may still be signed in at your identity provider.")
	}
	if s, ok := o.current(x); ok {
		h := x.r.Header
		h.Set(HeaderEmail, s.Email)
		h.Set(HeaderSubject, s.Subject)
		if s.Name != "" {
			h.Set(HeaderName, s.Name)
		}
		dropCookies(x.r, sessionCookie)
		return nil
	}
	// Only a page the visitor navigates to starts a sign-in: a browser's
	// own fetches (a favicon, a script) must not start flows of their own.
	if dest := x.r.Header.Get("Sec-Fetch-Dest"); x.r.Method != http.MethodGet && x.r.Method != http.MethodHead || dest != "" && dest != "document" {
		return o.page(x, http.StatusUnauthorized, true, "Sign-in required", "This tunnel needs a signed-in visitor: open it in a browser first.")
	}
	return o.start(x)
}

// current returns the visitor's session, if its cookie opens, is for this
// host and has not expired.
func (o *oidcAction) current(x *exchange) (session, bool) {
	var s session
	c, err := x.r.Cookie(sessionCookie)
	if err != nil || o.seal.open(c.Value, sessionCookie+"|"+x.r.Host, &s) != nil {
		return s, false
	}
	if x.in.now.Unix() >= s.Expires || s.Email == "" {
		return s, false
	}
	return s, true
}

// start sends the visitor to the provider (authorization code with PKCE),
// remembering the state, nonce, verifier and where to come back to in a
// sealed cookie.
func (o *oidcAction) start(x *exchange) *Decision {
	cfg, _, err := o.config(x)
	if err != nil {
		return o.page(x, http.StatusBadGateway, true, "Identity provider unreachable", "The edge could not reach the identity provider: "+err.Error())
	}
	f := flow{State: randomString(), Nonce: randomString(), Verifier: oauth2.GenerateVerifier(),
		Return: x.r.URL.RequestURI(), Expires: x.in.now.Add(stateTTL).Unix()}
	v, err := o.seal.seal(f, stateCookie+"|"+x.r.Host)
	if err != nil {
		return o.page(x, http.StatusInternalServerError, true, "Sign-in failed", err.Error())
	}
	// A cookie per flow, named by its state: sign-ins started in two tabs
	// at once do not overwrite each other's.
	http.SetCookie(x.w, o.cookie(x, flowCookie(f.State), v, ReservedPrefix+"oidc/", stateTTL))
	to := cfg.AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier))
	x.w.Header().Set("Cache-Control", "no-store")
	http.Redirect(x.w, x.r, to, http.StatusFound)
	return x.decide(http.StatusFound, false)
}

func (o *oidcAction) callback(x *exchange) *Decision {
	q := x.r.URL.Query()
	if e := q.Get("error"); e != "" {
		return o.page(x, http.StatusForbidden, true, "Sign-in refused", "The identity provider refused the sign-in: "+e+" "+q.Get("error_description"))
	}
	var f flow
	state := q.Get("state")
	c, err := x.r.Cookie(flowCookie(state))
	if err != nil || o.seal.open(c.Value, stateCookie+"|"+x.r.Host, &f) != nil ||
		subtle.ConstantTimeCompare([]byte(state), []byte(f.State)) != 1 {
		return o.page(x, http.StatusBadRequest, true, "Sign-in state mismatch", "This answer of the identity provider does not belong to a sign-in started in this browser. Open the page you wanted again.")
	}
	if x.in.now.Unix() >= f.Expires {
		return o.page(x, http.StatusBadRequest, true, "Sign-in expired", "The sign-in took more than 10 minutes. Open the page you wanted again.")
	}
	o.clearCookie(x, c.Name, ReservedPrefix+"oidc/")
	cfg, verifier, err := o.config(x)
	if err != nil {
		return o.page(x, http.StatusBadGateway, true, "Identity provider unreachable", "The edge could not reach the identity provider: "+err.Error())
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(x.r.Context(), o.p.opts.HTTPClient), 15*time.Second)
	defer cancel()
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(f.Verifier))
	if err != nil {
		return o.page(x, http.StatusForbidden, true, "Sign-in failed", "The identity provider did not accept the sign-in code.")
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := verifier.Verify(ctx, raw)
	if err != nil {
		return o.page(x, http.StatusForbidden, true, "Sign-in failed", "The identity provider's ID token did not verify: "+err.Error())
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		return o.page(x, http.StatusForbidden, true, "Sign-in failed", "The ID token's nonce does not match this sign-in.")
	}
	var claims struct {
		Email    string `json:"email"`
		Verified *bool  `json:"email_verified"`
		Name     string `json:"name"`
	}
	_ = idt.Claims(&claims)
	if claims.Email == "" {
		o.mu.Lock()
		prov := o.provider
		o.mu.Unlock()
		if ui, err := prov.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil && ui.Subject == idt.Subject {
			claims.Email = ui.Email
			v := ui.EmailVerified
			claims.Verified = &v
			_ = ui.Claims(&struct {
				Name *string `json:"name"`
			}{&claims.Name})
		}
	}
	if claims.Email == "" {
		return o.page(x, http.StatusForbidden, true, "Sign-in refused", "The identity provider did not tell the edge your email address (is the email scope allowed?).")
	}
	if claims.Verified != nil && !*claims.Verified {
		return o.page(x, http.StatusForbidden, true, "Sign-in refused", "Your email address "+claims.Email+" is not verified at the identity provider.")
	}
	if !o.allowed(claims.Email) {
		return o.page(x, http.StatusForbidden, true, "Not allowed", "You are signed in as "+claims.Email+", who may not use this tunnel.")
	}
	s := session{Email: claims.Email, Subject: idt.Subject, Name: claims.Name, Expires: x.in.now.Add(o.ttl).Unix()}
	v, err := o.seal.seal(s, sessionCookie+"|"+x.r.Host)
	if err != nil {
		return o.page(x, http.StatusInternalServerError, true, "Sign-in failed", err.Error())
	}
	http.SetCookie(x.w, o.cookie(x, sessionCookie, v, "/", o.ttl))
	to := f.Return
	if !strings.HasPrefix(to, "/") || strings.HasPrefix(to, "//") || strings.HasPrefix(to, "/\\") {
		to = "/"
	}
	x.w.Header().Set("Cache-Control", "no-store")
	http.Redirect(x.w, x.r, to, http.StatusFound)
	return x.decide(http.StatusFound, false)
}

func (o *oidcAction) allowed(email string) bool {
	if len(o.allowEmails) == 0 && len(o.allowDomains) == 0 {
		return true
	}
	email = strings.ToLower(email)
	if o.allowEmails[email] {
		return true
	}
	at := strings.LastIndexByte(email, '@')
	return at >= 0 && o.allowDomains[email[at+1:]]
}

// config discovers the provider once (and again after a failure, at most
// every providerRetryAfter) and returns the OAuth2 config for this host.
func (o *oidcAction) config(x *exchange) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider == nil {
		if o.lastErr != nil && x.in.now.Sub(o.failedAt) < providerRetryAfter {
			return nil, nil, o.lastErr
		}
		// The provider keeps this context for its key set: not the
		// request's, which ends with the request.
		ctx, cancel := context.WithTimeout(oidc.ClientContext(context.Background(), o.p.opts.HTTPClient), 15*time.Second)
		prov, err := oidc.NewProvider(ctx, o.issuer)
		cancel()
		if err != nil {
			o.lastErr, o.failedAt = errors.New("discovery of "+o.issuer+" failed: "+err.Error()), x.in.now
			return nil, nil, o.lastErr
		}
		o.provider = prov
		o.verifier = prov.Verifier(&oidc.Config{ClientID: o.clientID, Now: o.p.opts.Now})
	}
	scheme := "http"
	if x.r.TLS != nil {
		scheme = "https"
	}
	return &oauth2.Config{
		ClientID:     o.clientID,
		ClientSecret: o.secret,
		Endpoint:     o.provider.Endpoint(),
		RedirectURL:  scheme + "://" + x.r.Host + OIDCCallbackPath,
		Scopes:       o.scopes,
	}, o.verifier, nil
}

// cookie makes a host-only cookie (no Domain attribute): it goes back to
// this tunnel's host and no other.
func (o *oidcAction) cookie(x *exchange, name, value, path string, ttl time.Duration) *http.Cookie {
	return &http.Cookie{
		Name: name, Value: value, Path: path,
		MaxAge: int(ttl / time.Second), Expires: x.in.now.Add(ttl),
		HttpOnly: true, Secure: x.r.TLS != nil, SameSite: http.SameSiteLaxMode,
	}
}

func (o *oidcAction) clearCookie(x *exchange, name, path string) {
	http.SetCookie(x.w, &http.Cookie{Name: name, Value: "", Path: path, MaxAge: -1, HttpOnly: true, Secure: x.r.TLS != nil, SameSite: http.SameSiteLaxMode})
}

func (o *oidcAction) page(x *exchange, code int, refused bool, title, text string) *Decision {
	x.w.Header().Set("Cache-Control", "no-store")
	d := x.refuse(code, title, text)
	d.Refused = refused
	return d
}

// dropCookies removes the edge's own cookies from the request, so the app
// never sees the session.
func dropCookies(r *http.Request, names ...string) {
	cs := r.Cookies()
	r.Header.Del("Cookie")
	for _, c := range cs {
		keep := true
		for _, n := range names {
			if c.Name == n {
				keep = false
			}
		}
		if keep {
			r.AddCookie(c)
		}
	}
}

// flowCookie names the state cookie of the flow whose state is state
// (from the callback's query: only looked up, never set from it).
func flowCookie(state string) string {
	if len(state) > 16 {
		state = state[:16]
	}
	return stateCookie + "_" + state
}

func randomString() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
