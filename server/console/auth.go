package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// cookieName is the session cookie. The __Host- prefix (over HTTPS) would
// pin it further, but the admin address is usually plain HTTP on loopback.
const cookieName = "sluice_console"

// session is one signed-in browser.
type session struct {
	id      string
	name    string // who signed in, as they said
	addr    string
	csrf    string
	expires time.Time
	flash   string // a message for the next page shown
	bad     bool   // flash reports a failure
}

// sessionStore keeps the signed-in browsers. The cookie is signed, and its
// session must also be here, so signing out (or a restart) ends it.
type sessionStore struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]*session
}

// maxSessions bounds the sign-ins kept; the oldest go first.
const maxSessions = 256

func newSessionStore(ttl time.Duration) *sessionStore {
	return &sessionStore{ttl: ttl, m: map[string]*session{}}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (st *sessionStore) create(name, addr string, now time.Time) *session {
	s := &session{id: randomHex(16), name: name, addr: addr, csrf: randomHex(16), expires: now.Add(st.ttl)}
	st.mu.Lock()
	defer st.mu.Unlock()
	var oldest *session
	for id, x := range st.m {
		if !now.Before(x.expires) {
			delete(st.m, id)
		} else if oldest == nil || x.expires.Before(oldest.expires) {
			oldest = x
		}
	}
	if len(st.m) >= maxSessions && oldest != nil {
		delete(st.m, oldest.id)
	}
	st.m[s.id] = s
	return s
}

func (st *sessionStore) get(id string, now time.Time) *session {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.m[id]
	if s == nil || !now.Before(s.expires) {
		delete(st.m, id)
		return nil
	}
	return s
}

func (st *sessionStore) drop(id string) {
	st.mu.Lock()
	delete(st.m, id)
	st.mu.Unlock()
}

// takeFlash returns and clears the session's message.
func (st *sessionStore) takeFlash(s *session) (string, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	f, bad := s.flash, s.bad
	s.flash, s.bad = "", false
	return f, bad
}

func (st *sessionStore) setFlash(s *session, msg string, bad bool) {
	st.mu.Lock()
	s.flash, s.bad = msg, bad
	st.mu.Unlock()
}

// sign makes the cookie value: the session id and its expiry, and an
// HMAC-SHA256 of both under the console's key.
func (c *Console) sign(id string, expires time.Time) string {
	payload := make([]byte, 8, 8+len(id))
	binary.BigEndian.PutUint64(payload, uint64(expires.Unix()))
	payload = append(payload, id...)
	m := hmac.New(sha256.New, c.key[:])
	m.Write(payload)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(m.Sum(nil))
}

// verify checks a cookie value's signature and expiry and returns its
// session id.
func (c *Console) verify(v string, now time.Time) (string, bool) {
	p, s, ok := strings.Cut(v, ".")
	if !ok {
		return "", false
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p)
	sig, err2 := enc.DecodeString(s)
	if err1 != nil || err2 != nil || len(payload) <= 8 {
		return "", false
	}
	m := hmac.New(sha256.New, c.key[:])
	m.Write(payload)
	if !hmac.Equal(sig, m.Sum(nil)) {
		return "", false
	}
	if exp := time.Unix(int64(binary.BigEndian.Uint64(payload)), 0); !now.Before(exp) {
		return "", false
	}
	return string(payload[8:]), true
}

// authCtx is who a request is from, once authorised.
type authCtx struct {
	sess  *session // nil for the bearer token
	actor Actor
}

type ctxKey struct{}

func authOf(r *http.Request) *authCtx {
	a, _ := r.Context().Value(ctxKey{}).(*authCtx)
	return a
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// authenticate finds who sent r: the bearer token, or a valid session
// cookie.
func (c *Console) authenticate(r *http.Request) *authCtx {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		if c.tokenMatches(tok) {
			return &authCtx{actor: Actor{Name: "api", Addr: clientIP(r)}}
		}
		return nil
	}
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	now := time.Now()
	id, ok := c.verify(ck.Value, now)
	if !ok {
		return nil
	}
	s := c.sessions.get(id, now)
	if s == nil {
		return nil
	}
	return &authCtx{sess: s, actor: Actor{Name: s.name, Addr: clientIP(r)}}
}

// requireAuth lets signed-in browsers and bearer clients through; others
// get the sign-in page (pages) or a 401 (API, events).
func (c *Console) requireAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := c.authenticate(r)
		if a == nil {
			if r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/api/") && r.URL.Path != "/events" {
				http.Redirect(w, r, "/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice edge admin"`)
			apiError(w, http.StatusUnauthorized, "unauthorized: sign in to the console, or send the edge's admin token as Authorization: Bearer TOKEN")
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, a)))
	})
}

// checkCSRF refuses a state-changing request from a signed-in browser
// without the session's CSRF token (form field csrf or header
// X-CSRF-Token). The bearer token is not ambient, so API clients need
// none.
func checkCSRF(r *http.Request, a *authCtx) error {
	if a.sess == nil {
		return nil
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(a.sess.csrf)) != 1 {
		return fmt.Errorf("the form's CSRF token is missing or stale: reload the page and try again")
	}
	return nil
}

// loginLimiter bounds wrong admin tokens per source address, so the token
// cannot be guessed at the speed of the network.
type loginLimiter struct {
	mu sync.Mutex
	m  map[string]*loginFails
}

type loginFails struct {
	n     int
	first time.Time
}

const (
	maxLoginFailures = 10
	loginWindow      = 10 * time.Minute
)

// allowed reports whether src may try again now.
func (l *loginLimiter) allowed(src string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.m[src]
	return f == nil || now.Sub(f.first) > loginWindow || f.n < maxLoginFailures
}

func (l *loginLimiter) fail(src string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*loginFails{}
	}
	if len(l.m) > 10000 {
		for k, f := range l.m {
			if now.Sub(f.first) > loginWindow {
				delete(l.m, k)
			}
		}
	}
	f := l.m[src]
	if f == nil || now.Sub(f.first) > loginWindow {
		f = &loginFails{first: now}
		l.m[src] = f
	}
	f.n++
}

// safeNext keeps a sign-in's return address on this console: a path, not a
// URL elsewhere.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.HasPrefix(next, "/login") {
		return "/"
	}
	return next
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if a := c.authenticate(r); a != nil && a.sess != nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	c.renderLogin(w, http.StatusOK, r.URL.Query().Get("next"), "", r.URL.Query().Has("out"))
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	src := clientIP(r)
	next := r.PostFormValue("next")
	if !c.logins.allowed(src, now) {
		c.cfg.Logger.Warn("console sign-in refused: too many wrong tokens", "from", src)
		c.renderLogin(w, http.StatusTooManyRequests, next, fmt.Sprintf("Too many wrong tokens from %s: wait %v and try again.", src, loginWindow), false)
		return
	}
	if !c.tokenMatches(r.PostFormValue("token")) {
		c.logins.fail(src, now)
		c.cfg.Logger.Warn("console sign-in failed: wrong admin token", "from", src)
		c.renderLogin(w, http.StatusUnauthorized, next, "That is not this edge's admin token. The edge prints it when it starts (\"sluice edge: admin token …\"), unless its operator chose one.", false)
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" {
		name = "operator"
	}
	if len(name) > 64 {
		name = name[:64]
	}
	s := c.sessions.create(name, src, now)
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: c.sign(s.id, s.expires), Path: "/", Expires: s.expires,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: overHTTPS(r),
	})
	c.cfg.Logger.Info("console sign-in", "who", name, "from", src)
	http.Redirect(w, r, safeNext(next), http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	a := authOf(r)
	if err := checkCSRF(r, a); err != nil {
		c.refuse(w, r, http.StatusForbidden, err.Error())
		return
	}
	if a.sess != nil {
		c.sessions.drop(a.sess.id)
		c.cfg.Logger.Info("console sign-out", "who", a.actor.Name, "from", a.actor.Addr)
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: overHTTPS(r)})
	http.Redirect(w, r, "/login?out=1", http.StatusSeeOther)
}
