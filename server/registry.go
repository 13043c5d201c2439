package server

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/fleet"
	"github.com/sluicehq/sluice/server/leasestore"
)

// ownerID identifies who holds a name: a hash of the owner's name from the
// tokens file, or of the token itself, so the registry never keeps a token.
type ownerID [32]byte

func (o ownerID) String() string { return hex.EncodeToString(o[:]) }

// lease is a key's holder, live (ep set) or gone within the grace period.
type lease struct {
	rec   leasestore.Record
	ep    *endpoint
	until time.Time // when offline: the end of the grace
	rev   uint64    // in a fleet: the store's revision this edge last wrote
}

func (l *lease) has(secretHash string) bool {
	return secretHash != "" && slices.Contains(l.rec.Secrets, secretHash)
}

// maxSecrets bounds the secrets kept per lease (one per pooled agent).
const maxSecrets = 16

func (l *lease) addSecret(h string) {
	l.rec.Secrets = append(l.rec.Secrets, h)
	if n := len(l.rec.Secrets); n > maxSecrets {
		l.rec.Secrets = l.rec.Secrets[n-maxSecrets:]
	}
}

// registry maps every kind of public address (hostnames, TCP ports, UDP
// ports) to live endpoints, and keeps the lease of every key, live or within
// its grace: one reservation scheme for all of them. Lookups, on every
// request, are lock-free (sync.Map); claims and releases are serialized.
type registry struct {
	hosts sync.Map // lower-case hostname → *endpoint
	ports sync.Map // TCP port (int) → *endpoint
	udp   sync.Map // UDP port (int) → *endpoint

	mu     sync.Mutex
	leases map[string]*lease
	grace  time.Duration
	store  leasestore.Store
	fleet  *fleet.Store // set in a fleet: claims are decided against it (claimShared)
	// claiming holds, per key with a fleet claim in flight on this edge,
	// a channel closed when it ends (see reserveKey).
	claiming map[string]chan struct{}
	now      func() time.Time
	onErr    func(error)
	// quit ends the registry's background work (bg) when the edge stops.
	quit chan struct{}
	bg   sync.WaitGroup
}

// close ends the registry's background work.
func (r *registry) close() {
	close(r.quit)
	r.bg.Wait()
}

// newRegistry returns a registry whose released keys stay leased to their
// owner for grace, loading the leases store holds (nil: in memory only).
// Leases that were live when the edge stopped count their grace from now.
func newRegistry(grace time.Duration, store leasestore.Store) (*registry, error) {
	if store == nil {
		store = leasestore.NewMemory()
	}
	r := &registry{leases: map[string]*lease{}, grace: grace, store: store, now: time.Now, onErr: func(error) {}, quit: make(chan struct{})}
	recs, err := store.Load()
	if err != nil {
		return nil, err
	}
	now := r.now()
	for _, rec := range recs {
		until := rec.LastSeen.Add(grace)
		if rec.Connected {
			until = now.Add(grace)
			rec.Connected, rec.LastSeen = false, now
		}
		if grace <= 0 || !now.Before(until) {
			store.Delete(rec.Key)
			continue
		}
		r.leases[rec.Key] = &lease{rec: rec, until: until}
	}
	return r, nil
}

// SetGrace changes the grace given to keys released from now on.
func (r *registry) setGrace(d time.Duration) {
	r.mu.Lock()
	r.grace = d
	r.mu.Unlock()
}

// Leases returns the number of leases kept, live or within their grace.
func (r *registry) leaseCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.leases)
}

// Host returns the endpoint for a hostname (case-insensitive, no port).
func (r *registry) host(host string) (*endpoint, bool) {
	v, ok := r.hosts.Load(host)
	if !ok {
		if lower := strings.ToLower(host); lower != host {
			v, ok = r.hosts.Load(lower)
		}
	}
	if !ok {
		return nil, false
	}
	return v.(*endpoint), true
}

// Port returns the endpoint for a TCP port.
func (r *registry) port(port int) (*endpoint, bool) {
	v, ok := r.ports.Load(port)
	if !ok {
		return nil, false
	}
	return v.(*endpoint), true
}

// udpPort returns the endpoint for a UDP port.
func (r *registry) udpPort(port int) (*endpoint, bool) {
	v, ok := r.udp.Load(port)
	if !ok {
		return nil, false
	}
	return v.(*endpoint), true
}

// Reserved reports whether host is unrouted but leased to the agent that
// held it: its tunnel is offline and may come back.
func (r *registry) isReserved(host string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.leases[hostKey(host)]
	return ok && l.ep == nil && r.now().Before(l.until)
}

// count returns the number of hostnames and ports (TCP and UDP) routed.
func (r *registry) count() (hosts, ports int) {
	r.hosts.Range(func(any, any) bool { hosts++; return true })
	r.ports.Range(func(any, any) bool { ports++; return true })
	r.udp.Range(func(any, any) bool { ports++; return true })
	return hosts, ports
}

// routes returns the map that routes ep, by its kind, and its key there.
func (r *registry) routes(ep *endpoint) (*sync.Map, any) {
	switch ep.kind {
	case control.KindTCP:
		return &r.ports, ep.port
	case control.KindUDP:
		return &r.udp, ep.port
	}
	return &r.hosts, ep.host
}

// leaseValid reports whether secret is a current lease on key for owner: a
// name the edge gave this agent, which its rules need not allow again (a
// random name, for one).
func (r *registry) leaseValid(key, secret string, owner ownerID) bool {
	if secret == "" {
		return false
	}
	if r.fleet != nil {
		return r.leaseValidShared(key, secret, owner)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.leases[key]
	return l != nil && (l.ep != nil || r.now().Before(l.until)) && parseOwner(l.rec.Owner) == owner && l.has(hashSecret(secret))
}

// claimReq is one agent's claim on a key.
type claimReq struct {
	key       string
	kind      control.Kind
	name      string
	owner     ownerID
	ownerName string
	remote    string
	secret    string // the lease secret presented, if any
	random    bool
	pool      bool
	takeover  bool
	maxLeases int // the owner's lease bound; 0: none
	t         *tunnel
	// open makes the endpoint when no live one exists (binding a TCP port).
	open func() (*endpoint, error)
}

// newRecord is the record of a key no one held, granted to q.
func (q claimReq) newRecord(now time.Time) leasestore.Record {
	return leasestore.Record{Key: q.key, Kind: string(q.kind), Name: q.name, Owner: q.owner.String(),
		OwnerName: q.ownerName, Random: q.random, Since: now}
}

// claimed is what a successful claim returns.
type claimed struct {
	ep       *endpoint
	secret   string
	replaced []*tunnel // members taken over; the caller tells their agents
	reused   bool      // the lease was presented or the owner's offline key came back
}

func newSecret() (secret, hash string) {
	var b [16]byte
	rand.Read(b[:])
	secret = hex.EncodeToString(b[:])
	return secret, hashSecret(secret)
}

func hashSecret(s string) string {
	if s == "" {
		return ""
	}
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// claim decides who gets a key. A live holder keeps it unless the claimant
// presents its lease (the same agent, reconnecting before its old session
// was seen to die), both pool it, or the claimant of the same owner takes it
// over. An offline key within its grace goes back to its lease or owner only.
//
// Every claim on every kind of public address (hostname, TCP port, UDP port)
// is decided here, under r.mu, against r.leases, the edge's copy of the
// store; the store learns the outcome in the one Put below. A store shared
// by several edges would make that Put a compare-and-set against the record
// the decision was made on, and turn a lost race into a refusal or a retry
// with the key reloaded: a change to this function alone.
func (r *registry) claim(q claimReq) (claimed, error) {
	if r.fleet != nil {
		res, err := r.claimShared(q)
		if err == nil {
			r.evictShared(q.owner, q.maxLeases)
		}
		return res, err
	}
	presented := hashSecret(q.secret)
	r.mu.Lock()
	var res claimed
	l := r.leases[q.key]
	now := r.now()
	if l != nil && l.ep == nil && !now.Before(l.until) {
		delete(r.leases, q.key)
		l = nil
	}
	var err error
	switch {
	case l != nil && l.ep != nil:
		err = r.joinLive(l, q, presented, &res)
	case l != nil:
		if !l.has(presented) && ownerID(parseOwner(l.rec.Owner)) != q.owner {
			err = &reservedError{Key: q.key, OwnerName: l.rec.OwnerName, Until: l.until}
			break
		}
		err = r.openLease(l, q, presented, &res)
		res.reused = true
	default:
		l = &lease{rec: q.newRecord(now)}
		err = r.openLease(l, q, "", &res)
		if err == nil {
			r.leases[q.key] = l
		}
	}
	var rec leasestore.Record
	var evicted []string
	if err == nil {
		l.rec.Connected = true
		rec = l.rec
		rec.Secrets = slices.Clone(rec.Secrets)
		evicted = r.evictOver(q.owner, q.maxLeases)
	}
	r.mu.Unlock()
	if err != nil {
		return claimed{}, err
	}
	if perr := r.store.Put(rec); perr != nil {
		r.onErr(perr)
	}
	for _, k := range evicted {
		if derr := r.store.Delete(k); derr != nil {
			r.onErr(derr)
		}
	}
	return res, nil
}

// evictOver drops owner's offline leases, those that went offline first,
// until the owner holds at most max, and returns their keys (r.mu held).
// Live leases are never evicted: the tunnel limits bound those.
func (r *registry) evictOver(owner ownerID, max int) []string {
	if max <= 0 {
		return nil
	}
	o := owner.String()
	held := 0
	var idle []*lease
	for _, l := range r.leases {
		if l.rec.Owner != o {
			continue
		}
		held++
		if l.ep == nil {
			idle = append(idle, l)
		}
	}
	if held <= max {
		return nil
	}
	slices.SortFunc(idle, func(a, b *lease) int { return a.until.Compare(b.until) })
	var keys []string
	for _, l := range idle[:min(held-max, len(idle))] {
		delete(r.leases, l.rec.Key)
		keys = append(keys, l.rec.Key)
	}
	return keys
}

// joinLive handles a claim on a key a live endpoint serves (r.mu held).
func (r *registry) joinLive(l *lease, q claimReq, presented string, res *claimed) error {
	ep := l.ep
	sameOwner := parseOwner(l.rec.Owner) == q.owner
	ep.mu.Lock()
	defer ep.mu.Unlock()
	res.ep = ep
	switch {
	case l.has(presented) && sameOwner:
		res.secret = q.secret
		res.reused = true
		if !ep.pooled {
			// The same agent on a new session: its old one is dead or dying.
			ep.members = []*tunnel{q.t}
			return nil
		}
		ep.members = append(ep.members, q.t)
	case q.pool && ep.pooled && sameOwner:
		s, h := newSecret()
		l.addSecret(h)
		res.secret = s
		ep.members = append(ep.members, q.t)
	case q.takeover && sameOwner:
		s, h := newSecret()
		l.rec.Secrets = []string{h}
		res.secret = s
		res.replaced = ep.members
		ep.members = []*tunnel{q.t}
		ep.pooled = q.pool
		l.rec.Pooled = q.pool
		ep.since = r.now()
	default:
		holder := ep.members[0]
		return &heldError{Key: q.key, Remote: holder.ac.remote, OwnerName: l.rec.OwnerName, Since: ep.since,
			SameOwner: sameOwner, Pooled: ep.pooled}
	}
	res.ep = ep
	return nil
}

// openLease brings an offline or new lease's endpoint up (r.mu held).
func (r *registry) openLease(l *lease, q claimReq, presented string, res *claimed) error {
	ep, err := q.open()
	if err != nil {
		return err
	}
	ep.since = r.now()
	ep.pooled = q.pool
	ep.members = []*tunnel{q.t}
	if l.has(presented) {
		res.secret = q.secret
	} else {
		s, h := newSecret()
		if parseOwner(l.rec.Owner) != q.owner {
			l.rec.Secrets = nil
		}
		l.addSecret(h)
		res.secret = s
	}
	l.rec.Owner, l.rec.OwnerName, l.rec.Pooled = q.owner.String(), q.ownerName, q.pool
	l.ep, l.until = ep, time.Time{}
	m, k := r.routes(ep)
	m.Store(k, ep)
	res.ep = ep
	return nil
}

func parseOwner(s string) ownerID {
	var o ownerID
	hex.Decode(o[:], []byte(s))
	return o
}

// release removes t from its endpoint. The last member leaving unroutes the
// endpoint, closes its listener and starts the lease's grace.
func (r *registry) release(t *tunnel) {
	ep := t.ep
	if ep == nil {
		return
	}
	r.mu.Lock()
	ep.mu.Lock()
	i := slices.Index(ep.members, t)
	if i < 0 {
		ep.mu.Unlock()
		r.mu.Unlock()
		return // taken over: the endpoint is someone else's now
	}
	ep.members = slices.Delete(ep.members, i, i+1)
	left := len(ep.members)
	ep.mu.Unlock()
	if left > 0 {
		r.mu.Unlock()
		return
	}
	m, k := r.routes(ep)
	m.CompareAndDelete(k, ep)
	l := r.leases[ep.key]
	var rec leasestore.Record
	drop := false
	if l != nil && l.ep == ep {
		now := r.now()
		l.ep = nil
		l.until = now.Add(r.grace)
		l.rec.Connected, l.rec.LastSeen = false, now
		rec = l.rec
		if r.grace <= 0 {
			delete(r.leases, ep.key)
			drop = true
		}
	}
	// Drop expired leases here rather than in a timer goroutine: releases
	// are rare and the map stays small.
	var expired []string
	now := r.now()
	for k, x := range r.leases {
		if x.ep == nil && !now.Before(x.until) {
			delete(r.leases, k)
			expired = append(expired, k)
		}
	}
	r.mu.Unlock()
	if ep.ln != nil {
		ep.ln.Close()
	}
	if ep.udp != nil {
		ep.udp.close()
	}
	var err error
	switch {
	case l == nil || l.ep != nil:
	case drop:
		err = r.store.Delete(rec.Key)
	default:
		err = r.store.Put(rec)
	}
	for _, k := range expired {
		if e := r.store.Delete(k); err == nil {
			err = e
		}
	}
	if err != nil {
		r.onErr(err)
	}
}
