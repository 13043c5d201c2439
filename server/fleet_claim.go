package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/fleet"
	"github.com/sluicehq/sluice/server/leasestore"
)

// claimShared is claim in a fleet. The rules are the same; what they are
// applied to is the fleet's record of the key (which edge serves it, whose
// it is, its secrets), and the outcome is written back with
// compare-and-set against the version the decision read. Of two edges
// deciding on one key at once, one write lands; the other edge undoes what
// it opened and decides again on the record it reads then, which refuses
// a rival's claim as taken and lets the same agent in on one more edge.
//
// The store's round trips (the read, the write) run outside the registry's
// lock, so claims of different keys on one edge overlap: a claim reserves
// its key on this edge (a second claim of that key waits for it), decides
// and opens under the lock, writes without it, then commits or rolls back
// under the lock again. One name keeps one owner: across edges by the
// compare-and-set, on this edge by the reservation.
func (r *registry) claimShared(q claimReq) (claimed, error) {
	defer r.reserveKey(q.key)()
	// A key the fleet's copy (kept current by the watch) does not know is
	// most likely new: the first attempt creates it without reading it,
	// which saves a new name one of its two store round trips; a create
	// that finds the key taken reads it and decides again.
	_, known := r.fleet.Lookup(q.key)
	for attempt := 0; ; attempt++ {
		res, err, raced := r.claimSharedOnce(q, attempt == 0 && !known)
		if !raced || attempt == maxClaimRaces {
			return res, err
		}
		// Back off before reading again: the edges whose writes won are
		// often still writing the same record (an edge handing its agents
		// off drops its hold on each lease while the agents' new sessions
		// claim them), and a read at once meets the same churn.
		time.Sleep(time.Duration(attempt+1)*10*time.Millisecond + time.Duration(rand.IntN(10))*time.Millisecond)
	}
}

// maxClaimRaces bounds how often a claim is decided again after another
// edge changed the key's record between its read and its write: a change
// of holders (an agent moving between edges) is no rival, and the claim
// read again is decided on what it finds. With the back-off between them,
// the attempts span at most about two thirds of a second.
const maxClaimRaces = 10

// claimSharedOnce is one decision and write of claimShared, on the record
// read from the store, or on none when assumeNew; raced reports a write
// that lost to another edge's, after which the claim was undone.
func (r *registry) claimSharedOnce(q claimReq, assumeNew bool) (_ claimed, _ error, raced bool) {
	presented := hashSecret(q.secret)
	// A lease the fleet's record already gives this agent (vouched) does
	// not wait long for a store that is electing a leader: the agent
	// moving to this edge is granted what is its own from the record
	// known here, and the store learns this edge holds it when it answers.
	vouched := r.leaseValidShared(q.key, q.secret, q.owner)
	wait := fleet.DefaultOpTimeout
	if vouched {
		wait = vouchedStoreWait
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var cur fleet.Lease
	found := false
	if !assumeNew {
		var err error
		cur, err = r.fleet.Get(ctx, q.key)
		found = err == nil
		if err != nil && vouched && !errors.Is(err, fleet.ErrNotFound) {
			cur, found = r.fleet.Lookup(q.key)
			err = nil
		}
		if err != nil && !errors.Is(err, fleet.ErrNotFound) {
			return claimed{}, &storeError{fmt.Errorf("the fleet's store does not answer, so no new name or port can be granted now: %w", err)}, false
		}
	}
	r.mu.Lock()
	res, l, servedHere, sole, err := r.decideShared(q, presented, cur, found)
	var rec leasestore.Record
	if err == nil {
		l.rec.Connected = true
		rec = l.rec
		rec.Secrets = slices.Clone(rec.Secrets)
	}
	r.mu.Unlock()
	if err != nil {
		return claimed{}, err, false
	}
	rev, werr := r.writeShared(ctx, rec, cur, found, sole)
	if werr != nil && vouched && !errors.Is(werr, fleet.ErrTaken) && !errors.Is(werr, fleet.ErrConflict) {
		r.onErr(fmt.Errorf("the fleet's store did not answer in %v; serving %s from the lease known here and recording it when the store answers: %w", wait, q.key, werr))
		// Started before the commit below, which its first look (after
		// a delay) finds done.
		r.holdLater(q.key, l)
		werr = nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if werr != nil {
		if !servedHere {
			r.unopen(l.ep)
		} else {
			r.unjoin(l.ep, q.t)
		}
		if errors.Is(werr, fleet.ErrTaken) || errors.Is(werr, fleet.ErrConflict) {
			return claimed{}, &heldError{Key: q.key, Remote: "another edge of the fleet, which claimed it at the same moment",
				OwnerName: rec.OwnerName, Since: r.now()}, true
		}
		return claimed{}, &storeError{fmt.Errorf("the fleet's store did not take the claim: %w", werr)}, false
	}
	l.rev = rev
	r.leases[q.key] = l
	return res, nil, false
}

// vouchedStoreWait is how long a claim the fleet's record already grants
// waits for the store before it is granted from the record: a store whose
// leader died elects another in seconds, and an agent moving off that
// dead edge must be back well within one.
const vouchedStoreWait = 250 * time.Millisecond

// storeError is a claim that failed because the fleet's store did not
// answer: the agent may try again.
type storeError struct{ error }

func (e *storeError) Unwrap() error { return e.error }

// holdLater records in the store that this edge holds key, once the store
// answers, while l is still served here.
func (r *registry) holdLater(key string, l *lease) {
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		for delay := 100 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
			select {
			case <-time.After(delay):
			case <-r.quit:
				return
			}
			r.mu.Lock()
			live := r.leases[key] == l && l.ep != nil
			r.mu.Unlock()
			if !live {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), fleet.DefaultOpTimeout)
			_, err := r.fleet.Hold(ctx, key)
			cancel()
			if err == nil {
				return
			}
		}
	}()
}

// reserveKey makes this edge's claims of key run one at a time: it waits
// for a claim of key in flight to end, and returns the function that ends
// this one.
func (r *registry) reserveKey(key string) (done func()) {
	r.mu.Lock()
	for {
		ch, busy := r.claiming[key]
		if !busy {
			break
		}
		r.mu.Unlock()
		<-ch
		r.mu.Lock()
	}
	if r.claiming == nil {
		r.claiming = map[string]chan struct{}{}
	}
	ch := make(chan struct{})
	r.claiming[key] = ch
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		delete(r.claiming, key)
		r.mu.Unlock()
		close(ch)
	}
}

// decideShared applies the claim rules to the fleet's record cur of the
// key and opens what the claim gets (r.mu held); sole is a takeover, after
// which this edge is the lease's only holder.
func (r *registry) decideShared(q claimReq, presented string, cur fleet.Lease, found bool) (_ claimed, _ *lease, servedHere, sole bool, _ error) {
	var err error
	var rec leasestore.Record
	if found {
		if rec, err = fleetRecord(cur); err != nil {
			return claimed{}, nil, false, false, err
		}
	}
	now := r.now()
	var res claimed
	l := r.leases[q.key]
	servedHere = l != nil && l.ep != nil
	heldElsewhere := found && slices.ContainsFunc(cur.Holders, func(id string) bool { return id != r.fleet.ID() })
	switch {
	case servedHere:
		if found {
			l.rec.Secrets = rec.Secrets // pooled agents on other edges add theirs
		}
		err = r.joinLive(l, q, presented, &res)
		sole = q.takeover && len(res.replaced) > 0
	case heldElsewhere:
		l = &lease{rec: rec}
		sameOwner := parseOwner(rec.Owner) == q.owner
		switch {
		case l.has(presented) && sameOwner:
			// The same agent on one more edge, or moved here.
			err = r.openLease(l, q, presented, &res)
			res.reused = true
		case q.pool && rec.Pooled && sameOwner:
			err = r.openLease(l, q, "", &res)
		case q.takeover && sameOwner:
			// The edges that served it learn of it from the record
			// (takenOver) and tell their agents.
			l.rec.Secrets = nil
			err = r.openLease(l, q, "", &res)
			sole = true
		default:
			err = &heldError{Key: q.key, Remote: "another edge of the fleet", OwnerName: rec.OwnerName, Since: rec.Since,
				SameOwner: sameOwner, Pooled: rec.Pooled}
		}
	case found && r.grace > 0 && now.Before(rec.LastSeen.Add(r.grace)):
		l = &lease{rec: rec, until: rec.LastSeen.Add(r.grace)}
		if !l.has(presented) && parseOwner(rec.Owner) != q.owner {
			return claimed{}, nil, false, false, &reservedError{Key: q.key, OwnerName: rec.OwnerName, Until: l.until}
		}
		err = r.openLease(l, q, presented, &res)
		res.reused = true
	default:
		// New, or lapsed: the write below replaces the lapsed version.
		l = &lease{rec: q.newRecord(now)}
		err = r.openLease(l, q, "", &res)
	}
	return res, l, servedHere, sole, err
}

// writeShared writes rec as the fleet's lease, held by this edge, if the
// fleet's record is still cur (absent when !found); sole makes this edge
// its only holder. It returns the revision written.
func (r *registry) writeShared(ctx context.Context, rec leasestore.Record, cur fleet.Lease, found, sole bool) (uint64, error) {
	rec.Secrets = slices.Clone(rec.Secrets)
	rec.Connected, rec.LastSeen = false, time.Time{} // the fleet's holders say these
	value, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	var l fleet.Lease
	if !found {
		l, err = r.fleet.Claim(ctx, rec.Key, value, true)
		return l.Revision, err
	}
	next := cur
	next.Value = value
	switch {
	case sole:
		next.Holders = []string{r.fleet.ID()}
	case !next.Held(r.fleet.ID()):
		next.Holders = append(slices.Clone(next.Holders), r.fleet.ID())
	}
	next.Released = time.Time{}
	l, err = r.fleet.Update(ctx, next)
	return l.Revision, err
}

// takenOver ends this edge's part in a lease an agent on another edge took
// over: the fleet's record, newer than what this edge wrote, no longer
// lists it as a holder, and none of the secrets its agents hold is left in
// it. The endpoint is unrouted here and returned with the members it had,
// whose agents the caller tells, as on one edge. Nil when l is no such
// change.
func (r *registry) takenOver(fl fleet.Lease) (*endpoint, []*tunnel) {
	if fl.Held(r.fleet.ID()) || !r.routed(fl.Key) {
		return nil, nil // the common case, decided without the lock
	}
	rec, err := fleetRecord(fl)
	if err != nil {
		return nil, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.leases[fl.Key]
	if l == nil || l.ep == nil || fl.Revision <= l.rev || slices.ContainsFunc(l.rec.Secrets, func(h string) bool { return slices.Contains(rec.Secrets, h) }) {
		return nil, nil
	}
	ep := l.ep
	ep.mu.Lock()
	members := ep.members
	ep.members = nil
	ep.mu.Unlock()
	m, k := r.routes(ep)
	m.CompareAndDelete(k, ep)
	delete(r.leases, fl.Key) // the fleet's record is the lease now
	return ep, members
}

// unopen undoes openLease for a claim that lost its race (r.mu held).
func (r *registry) unopen(ep *endpoint) {
	if ep == nil {
		return
	}
	m, k := r.routes(ep)
	m.CompareAndDelete(k, ep)
	if ep.ln != nil {
		ep.ln.Close()
	}
	if ep.udp != nil {
		ep.udp.close()
	}
}

// unjoin undoes joinLive's addition of t (r.mu held).
func (r *registry) unjoin(ep *endpoint, t *tunnel) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if i := slices.Index(ep.members, t); i >= 0 {
		ep.members = slices.Delete(ep.members, i, i+1)
	}
}

// leaseValidShared is leaseValid against the fleet's record: a lease the
// edge gave on another edge is as good here.
func (r *registry) leaseValidShared(key, secret string, owner ownerID) bool {
	l, ok := r.fleet.Lookup(key)
	if !ok {
		return false
	}
	rec, err := fleetRecord(l)
	if err != nil || parseOwner(rec.Owner) != owner || !slices.Contains(rec.Secrets, hashSecret(secret)) {
		return false
	}
	return rec.Connected || (r.grace > 0 && r.now().Before(rec.LastSeen.Add(r.grace)))
}

// evictShared is evictOver against the fleet's leases, after a claim: past
// the owner's bound, the owner's leases no edge holds go, those released
// first first. A removal that loses a race (the lease was claimed again)
// is skipped; one the store did not take waits for the owner's next claim.
func (r *registry) evictShared(owner ownerID, max int) {
	if max <= 0 {
		return
	}
	o := owner.String()
	held := 0
	var idle []fleet.Lease
	for _, l := range r.fleet.Leases() {
		if !bytes.Contains(l.Value, []byte(o)) {
			continue // not the owner's: no need to decode it
		}
		rec, err := fleetRecord(l)
		if err != nil || rec.Owner != o {
			continue
		}
		held++
		if len(l.Holders) == 0 {
			idle = append(idle, l)
		}
	}
	if held <= max {
		return
	}
	slices.SortFunc(idle, func(a, b fleet.Lease) int { return a.Released.Compare(b.Released) })
	for _, l := range idle[:min(held-max, len(idle))] {
		ctx, cancel := context.WithTimeout(context.Background(), fleet.DefaultOpTimeout)
		err := r.fleet.Delete(ctx, l.Key, l.Revision)
		cancel()
		if err != nil && !errors.Is(err, fleet.ErrConflict) {
			r.onErr(err)
			continue
		}
		r.mu.Lock()
		if x := r.leases[l.Key]; x != nil && x.ep == nil {
			delete(r.leases, l.Key)
		}
		r.mu.Unlock()
	}
}

// routed reports whether an endpoint of this edge serves the lease key.
func (r *registry) routed(key string) bool {
	kind, v, _ := strings.Cut(key, ":")
	if kind == "host" {
		_, ok := r.host(v)
		return ok
	}
	port, err := strconv.Atoi(v)
	if err != nil {
		return false
	}
	switch kind {
	case "port":
		_, ok := r.port(port)
		return ok
	case "udp":
		_, ok := r.udpPort(port)
		return ok
	}
	return false
}
