// Package console is the edge's operator console: server-rendered pages of
// agents, tunnels, owners, refusals and certificates that update live
// (Server-Sent Events), and the operator's actions (disconnect a session,
// revoke a token, release a lease), behind the edge's admin token.
//
// The console knows edges only through Backend, so a fleet is a list of
// edges: each Snapshot names its edge, and the pages show them side by side.
//
// A browser signs in once with the admin token and then carries a signed,
// expiring session cookie (HttpOnly, SameSite=Strict, Secure over HTTPS);
// scripts and API clients send the token as Authorization: Bearer. Every
// action needs the session's CSRF token and a request from the console's own
// origin. See docs/CONSOLE.md.
package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/internal/cfgerr"
	"github.com/sluicehq/sluice/internal/page"
)

// Defaults of Config.
const (
	DefaultSessionTTL = 12 * time.Hour
	DefaultInterval   = time.Second
)

// Config configures a console.
type Config struct {
	// Token is the admin token: signs a browser in, and authorises API
	// clients as a bearer token. Required.
	Token string
	// Edges are the edges shown, at least one; their Snapshot's Edge.ID
	// must differ.
	Edges []Backend
	// SessionTTL is how long a sign-in lasts. Zero means DefaultSessionTTL.
	SessionTTL time.Duration
	// Interval is how often rates and sparklines are sampled. Zero means
	// DefaultInterval.
	Interval time.Duration
	// Logger receives the audit log of actions and sign-ins. Nil discards.
	Logger *slog.Logger
}

// ConfigError says which field of a Config is wrong and why.
type ConfigError = cfgerr.Error

func (c *Config) fill() error {
	if c.SessionTTL == 0 {
		c.SessionTTL = DefaultSessionTTL
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.Token == "":
		return cfgerr.New("console", "Token", "no admin token: the console shows every agent's address and can revoke tokens")
	case len(c.Edges) == 0:
		return cfgerr.New("console", "Edges", "no edge to show: give at least one Backend")
	case c.SessionTTL < time.Minute:
		return cfgerr.New("console", "SessionTTL", "%v is too short for a sign-in: give a minute or more", c.SessionTTL)
	case c.Interval < 0:
		return cfgerr.New("console", "Interval", "%v is negative: give a positive duration", c.Interval)
	}
	return nil
}

// Console serves the pages, the event stream and the actions.
type Console struct {
	cfg       Config
	tokenHash [32]byte
	key       [32]byte // signs session cookies; new each run
	sessions  *sessionStore
	logins    *loginLimiter
	live      *sampler
	handler   http.Handler
	audit     *auditLog
	stopOnce  sync.Once
	stop      chan struct{}
}

// New validates cfg. Call Run to sample rates while serving Handler.
func New(cfg Config) (*Console, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	c := &Console{
		cfg: cfg, tokenHash: sha256.Sum256([]byte(cfg.Token)),
		sessions: newSessionStore(cfg.SessionTTL), logins: &loginLimiter{},
		audit: &auditLog{}, stop: make(chan struct{}),
	}
	rand.Read(c.key[:])
	c.live = newSampler(cfg.Edges, cfg.Interval)
	c.handler = c.routes()
	return c, nil
}

// Handler serves the console.
func (c *Console) Handler() http.Handler { return c.handler }

// Run samples the edges every Interval, and at once when one changes,
// until ctx ends; then it ends the live event streams.
func (c *Console) Run(ctx context.Context) {
	defer c.stopOnce.Do(func() { close(c.stop) })
	tick := time.NewTicker(c.cfg.Interval)
	defer tick.Stop()
	gap := time.NewTimer(0)
	defer gap.Stop()
	for !c.live.waitChange(ctx.Done(), tick.C) {
		c.live.sample(time.Now())
		// A burst of changes (a flood of refused connections, agents
		// reconnecting together) is taken in one sample per fifth of the
		// interval rather than one each.
		gap.Reset(c.cfg.Interval / 5)
		select {
		case <-ctx.Done():
			return
		case <-gap.C:
		}
	}
}

// Protect serves h behind the console's sign-in: a session cookie or the
// bearer token, from the console's own origin. The edge puts its JSON
// status behind it.
func (c *Console) Protect(h http.Handler) http.Handler {
	return c.guard(c.requireAuth(h))
}

func (c *Console) tokenMatches(tok string) bool {
	h := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(h[:], c.tokenHash[:]) == 1
}

// overHTTPS reports whether the browser reached the console over HTTPS:
// directly, or through a proxy that terminated TLS and says so.
func overHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// sameOrigin reports whether a request may act for the signed-in browser:
// a browser names its page's origin in Origin on every POST and on
// cross-origin fetches, and marks cross-site ones in Sec-Fetch-Site. The
// Origin's host must be the Host the request was sent to; its scheme may
// differ, since a proxy in front may have terminated TLS.
func sameOrigin(r *http.Request) (bool, string) {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !strings.EqualFold(u.Host, r.Host) {
			return false, "requests from another origin (" + o + ") may not use the console"
		}
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s == "cross-site" || s == "same-site" {
		return false, "requests from another site may not use the console"
	}
	return true, ""
}

// guard sets the headers every answer carries and refuses requests from
// another origin before anything else sees them.
func (c *Console) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page.Private(w.Header())
		// A top-level navigation from another site's link is harmless (the
		// Strict cookie does not come along) and lands on the sign-in page.
		navigation := r.Method == http.MethodGet && r.Header.Get("Sec-Fetch-Mode") == "navigate"
		if ok, why := sameOrigin(r); !ok && !navigation {
			http.Error(w, "403 forbidden: "+why, http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}
