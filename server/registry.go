package server

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"
)

// Owner identifies who holds a name: a hash of the agent's token, so the
// registry never keeps the token itself.
type Owner [32]byte

// Registry errors, matched with errors.Is.
var (
	// ErrNameTaken means another token holds the name, or held it moments ago
	// and may come back for it.
	ErrNameTaken = errors.New("name is held by another agent")
	// ErrPortTaken means another token holds the TCP port.
	ErrPortTaken = errors.New("TCP port is held by another agent")
)

// Route is what the registry maps a hostname or port to. The server's tunnel
// type implements it; the registry needs only the owner.
type Route interface {
	owner() Owner
}

type reservation struct {
	owner Owner
	until time.Time
}

// Registry maps public hostnames and TCP ports to live tunnels. Lookups, which
// happen on every request, are lock-free (sync.Map); claims and releases, which
// happen when agents come and go, are serialized so that check-then-store is
// atomic.
//
// A name released by a disconnecting agent stays reserved for its token for
// the grace period, so an agent that reconnects gets its URL back even if
// another agent asked for the same name in between.
type Registry struct {
	hosts sync.Map // lower-case hostname → Route
	ports sync.Map // int → Route

	mu       sync.Mutex
	reserved map[string]reservation // "h:"+host or "p:"+port
	grace    time.Duration
	now      func() time.Time
}

// NewRegistry returns an empty registry whose released names stay reserved for
// their owner for grace.
func NewRegistry(grace time.Duration) *Registry {
	return &Registry{reserved: make(map[string]reservation), grace: grace, now: time.Now}
}

// Host returns the route for a hostname (case-insensitive, no port).
func (r *Registry) Host(host string) (Route, bool) {
	v, ok := r.hosts.Load(host)
	if !ok {
		if lower := strings.ToLower(host); lower != host {
			v, ok = r.hosts.Load(lower)
		}
	}
	if !ok {
		return nil, false
	}
	return v.(Route), true
}

// Port returns the route for a TCP port.
func (r *Registry) Port(port int) (Route, bool) {
	v, ok := r.ports.Load(port)
	if !ok {
		return nil, false
	}
	return v.(Route), true
}

// ClaimHost maps host to rt. If a live route of the same owner holds host, rt
// replaces it and the old route is returned, so the caller can retire it (the
// agent reconnected before the edge noticed the old session die).
func (r *Registry) ClaimHost(host string, rt Route) (replaced Route, err error) {
	return r.claim(&r.hosts, strings.ToLower(host), "h:"+strings.ToLower(host), rt, ErrNameTaken)
}

// ClaimPort maps a TCP port to rt, with the same rules as ClaimHost. Binding
// the port is the caller's job; on failure it calls ReleasePort.
func (r *Registry) ClaimPort(port int, rt Route) (replaced Route, err error) {
	return r.claim(&r.ports, port, fmt.Sprintf("p:%d", port), rt, ErrPortTaken)
}

func (r *Registry) claim(m *sync.Map, key any, resKey string, rt Route, taken error) (Route, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := m.Load(key); ok {
		old := v.(Route)
		if old.owner() != rt.owner() {
			return nil, taken
		}
		m.Store(key, rt)
		return old, nil
	}
	if res, ok := r.reserved[resKey]; ok {
		if res.owner != rt.owner() && r.now().Before(res.until) {
			return nil, taken
		}
		delete(r.reserved, resKey)
	}
	m.Store(key, rt)
	return nil, nil
}

// ReleaseHost unmaps host if it still maps to rt, and reserves it for rt's
// owner for the grace period.
func (r *Registry) ReleaseHost(host string, rt Route) {
	host = strings.ToLower(host)
	r.release(&r.hosts, host, "h:"+host, rt)
}

// ReleasePort unmaps port if it still maps to rt, and reserves it for rt's
// owner for the grace period.
func (r *Registry) ReleasePort(port int, rt Route) {
	r.release(&r.ports, port, fmt.Sprintf("p:%d", port), rt)
}

func (r *Registry) release(m *sync.Map, key any, resKey string, rt Route) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !m.CompareAndDelete(key, rt) {
		return // a reconnected session of the same owner took it over
	}
	if r.grace > 0 {
		now := r.now()
		r.reserved[resKey] = reservation{owner: rt.owner(), until: now.Add(r.grace)}
		// Drop expired reservations here rather than in a timer goroutine:
		// releases are rare and the map stays small.
		for k, res := range r.reserved {
			if !now.Before(res.until) {
				delete(r.reserved, k)
			}
		}
	}
}

// Count returns the number of hostnames and ports mapped, for tests and logs.
func (r *Registry) Count() (hosts, ports int) {
	r.hosts.Range(func(any, any) bool { hosts++; return true })
	r.ports.Range(func(any, any) bool { ports++; return true })
	return hosts, ports
}

// ValidName reports whether name can be a DNS label: 1 to 63 letters, digits
// and hyphens, not starting or ending with a hyphen.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ValidHostname reports whether host is a DNS name made of valid labels.
func ValidHostname(host string) bool {
	if len(host) == 0 || len(host) > 253 {
		return false
	}
	for _, label := range strings.Split(host, ".") {
		if !ValidName(label) {
			return false
		}
	}
	return true
}

var (
	nameAdjectives = []string{
		"amber", "brave", "calm", "clever", "cosmic", "crisp", "dapper", "eager",
		"fancy", "gentle", "golden", "happy", "jolly", "keen", "lively", "lucky",
		"mellow", "merry", "misty", "nimble", "noble", "plucky", "proud", "quick",
		"quiet", "rapid", "rosy", "rustic", "shiny", "silent", "silver", "snowy",
		"solar", "sunny", "swift", "tidy", "vivid", "warm", "wild", "witty",
	}
	nameNouns = []string{
		"badger", "beacon", "brook", "canyon", "cedar", "comet", "coral", "crane",
		"delta", "falcon", "fern", "finch", "fjord", "gecko", "harbor", "heron",
		"island", "lagoon", "lark", "lynx", "maple", "meadow", "otter", "owl",
		"panda", "pebble", "pine", "quartz", "raven", "reef", "river", "robin",
		"sparrow", "spruce", "stream", "tiger", "tulip", "walrus", "willow", "zephyr",
	}
)

// RandomName returns a readable random name such as "brave-otter-42": easy to
// read aloud, with about 2^17 possibilities, and retried by the caller on the
// rare collision.
func RandomName() string {
	return pick(nameAdjectives) + "-" + pick(nameNouns) + "-" + fmt.Sprint(randInt(90)+10)
}

func pick(words []string) string { return words[randInt(len(words))] }

func randInt(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		panic("sluice: crypto/rand failed: " + err.Error()) // the OS has no entropy source: nothing sensible to do
	}
	return int(v.Int64())
}

// Reserved reports whether host is unrouted but still reserved for the agent
// that held it, i.e. its tunnel is offline and may come back.
func (r *Registry) Reserved(host string) bool {
	key := "h:" + strings.ToLower(host)
	r.mu.Lock()
	defer r.mu.Unlock()
	res, ok := r.reserved[key]
	return ok && r.now().Before(res.until)
}
