package policy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// verifiedCacheSize bounds the cache of credentials a bcrypt hash already
// accepted: a bcrypt check costs tens of milliseconds, too much to pay on
// every request of a signed-in browser.
const verifiedCacheSize = 1024

type credential struct {
	sum    [32]byte // SHA-256 of a plain password
	bcrypt []byte   // or a bcrypt hash
}

type basicAuth struct {
	challenge string
	users     map[string]credential
	dummy     credential
	fails     *failures

	// headers holds, for each user with a plain password, the SHA-256 of
	// the Authorization header clients send for it ("Basic " and the
	// standard base64 of user:password): a request carrying exactly that
	// header passes on one hash, without decoding it. Any other form is
	// checked the long way.
	headers [][32]byte

	cacheKey [32]byte
	mu       sync.Mutex
	verified map[[32]byte]struct{}
}

func newBasicAuth(p *Policy, c *BasicAuth) (*basicAuth, error) {
	if len(c.Credentials) == 0 {
		return nil, fmt.Errorf("credentials: give at least one user:password or user:bcrypt-hash")
	}
	realm := c.Realm
	if realm == "" {
		realm = "sluice"
	}
	if strings.ContainsAny(realm, "\"\\\r\n") {
		return nil, fmt.Errorf("realm must not contain quotes, backslashes or line breaks")
	}
	b := &basicAuth{
		challenge: `Basic realm="` + realm + `", charset="UTF-8"`,
		users:     make(map[string]credential, len(c.Credentials)),
		fails:     newFailures(p.opts.MaxClients),
		verified:  make(map[[32]byte]struct{}),
		dummy:     credential{sum: sha256.Sum256([]byte("not a password"))},
	}
	_, _ = rand.Read(b.cacheKey[:])
	for i, s := range c.Credentials {
		user, pass, ok := cutColon(s.reveal())
		if !ok || user == "" || pass == "" {
			return nil, fmt.Errorf("credentials[%d]: not user:password (neither may be empty)", i)
		}
		if _, dup := b.users[user]; dup {
			return nil, fmt.Errorf("credentials[%d]: user %q is given twice", i, user)
		}
		if isBcrypt(pass) {
			if _, err := bcrypt.Cost([]byte(pass)); err != nil {
				return nil, fmt.Errorf("credentials[%d]: user %q: the bcrypt hash is malformed: %v", i, user, err)
			}
			b.users[user] = credential{bcrypt: []byte(pass)}
			continue
		}
		b.users[user] = credential{sum: sha256.Sum256([]byte(pass))}
		b.headers = append(b.headers, sha256.Sum256([]byte("Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))))
	}
	return b, nil
}

// maxFastHeader is the longest Authorization header the fast check hashes
// from a buffer on the stack; longer ones take the long way.
const maxFastHeader = 256

// knownHeader reports whether h is the usual Authorization header of a
// user with a plain password. It compares with every such user, so the
// time it takes says nothing about which one matched.
func (b *basicAuth) knownHeader(h string) bool {
	if len(b.headers) == 0 || len(h) > maxFastHeader {
		return false
	}
	var buf [maxFastHeader]byte
	sum := sha256.Sum256(buf[:copy(buf[:], h)])
	match := 0
	for i := range b.headers {
		match |= subtle.ConstantTimeCompare(sum[:], b.headers[i][:])
	}
	return match == 1
}

func (*basicAuth) kind() string { return "basic-auth" }

func (b *basicAuth) request(x *exchange) *Decision {
	addr := x.in.client.Addr()
	if d := b.fails.locked(x, "wrong passwords"); d != nil {
		return d
	}
	if h := x.r.Header["Authorization"]; len(h) == 1 && b.knownHeader(h[0]) {
		b.fails.succeed(addr)
		// The app gets the request without the edge's credentials.
		delete(x.r.Header, "Authorization")
		return nil
	}
	user, pass, given := x.r.BasicAuth()
	if given {
		if b.check(user, pass) {
			b.fails.succeed(addr)
			delete(x.r.Header, "Authorization")
			return nil
		}
		b.fails.fail(addr, x.in.now)
	}
	x.w.Header().Set("WWW-Authenticate", b.challenge)
	return x.refuse(http.StatusUnauthorized, "Sign-in required", "This tunnel asks for a user name and password.")
}

// check compares in constant time for a known user, and does the same
// work for an unknown one, so timing tells nothing about which users exist.
func (b *basicAuth) check(user, pass string) bool {
	c, known := b.users[user]
	if !known {
		c = b.dummy
	}
	if c.bcrypt == nil {
		got := sha256.Sum256([]byte(pass))
		return subtle.ConstantTimeCompare(got[:], c.sum[:]) == 1 && known
	}
	mac := hmac.New(sha256.New, b.cacheKey[:])
	mac.Write([]byte(user))
	mac.Write([]byte{0})
	mac.Write([]byte(pass))
	var key [32]byte
	mac.Sum(key[:0])
	b.mu.Lock()
	_, hit := b.verified[key]
	b.mu.Unlock()
	if hit {
		return true
	}
	if bcrypt.CompareHashAndPassword(c.bcrypt, []byte(pass)) != nil {
		return false
	}
	b.mu.Lock()
	if len(b.verified) >= verifiedCacheSize {
		clear(b.verified)
	}
	b.verified[key] = struct{}{}
	b.mu.Unlock()
	return true
}
