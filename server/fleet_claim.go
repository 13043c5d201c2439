package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sluicehq/sluice/fleet"
	"github.com/sluicehq/sluice/server/leasestore"
)

// claimShared is claim in a fleet. The rules are the same; what they are
// applied to is the fleet's record of the key (which edge serves it, whose
// it is, its secrets), and the outcome is written back with
// compare-and-set against the version the decision read. Of two edges
// deciding on one key at once, one write lands; the other edge undoes what
// it opened and refuses the claim as taken.
//
// The store's round trips (the read, the write) run outside the registry's
// lock, so claims of different keys on one edge overlap: a claim reserves
// its key on this edge (a second claim of that key waits for it), decides
// and opens under the lock, writes without it, then commits or rolls back
// under the lock again. One name keeps one owner: across edges by the
// compare-and-set, on this edge by the reservation.
func (r *registry) claimShared(q claimReq) (claimed, error) {
	presented := hashSecret(q.secret)
	defer r.reserveKey(q.key)()
	ctx, cancel := context.WithTimeout(context.Background(), fleet.DefaultOpTimeout)
	defer cancel()
	// A key the fleet's copy (kept current by the watch) does not know is
	// most likely new: it is created at once, and read from the store only
	// when another edge turns out to have it, which saves a new name one
	// of its two round trips.
	if _, known := r.fleet.Lookup(q.key); !known {
		res, raced, err := r.claimAgainst(ctx, q, presented, fleet.Lease{}, false)
		if !raced {
			return res, err
		}
	}
	cur, err := r.fleet.Get(ctx, q.key)
	found := err == nil
	if err != nil && !errors.Is(err, fleet.ErrNotFound) {
		return claimed{}, fmt.Errorf("the fleet's store does not answer, so no new name or port can be granted now: %w", err)
	}
	res, _, err := r.claimAgainst(ctx, q, presented, cur, found)
	return res, err
}

// claimAgainst decides q against cur, the fleet's record of the key
// (absent when !found), and writes the outcome back if the record is still
// cur. raced says the write lost to another edge's; the claim is then
// refused as taken, and all it opened undone.
func (r *registry) claimAgainst(ctx context.Context, q claimReq, presented string, cur fleet.Lease, found bool) (_ claimed, raced bool, _ error) {
	r.mu.Lock()
	res, l, servedHere, err := r.decideShared(q, presented, cur, found)
	var rec leasestore.Record
	if err == nil {
		l.rec.Connected = true
		rec = l.rec
		rec.Secrets = slices.Clone(rec.Secrets)
	}
	r.mu.Unlock()
	if err != nil {
		return claimed{}, false, err
	}
	werr := r.writeShared(ctx, rec, cur, found)
	r.mu.Lock()
	defer r.mu.Unlock()
	if werr != nil {
		if !servedHere {
			r.unopen(l.ep)
		} else {
			r.unjoin(l.ep, q.t)
		}
		if errors.Is(werr, fleet.ErrTaken) || errors.Is(werr, fleet.ErrConflict) {
			return claimed{}, true, &heldError{Key: q.key, Remote: "another edge of the fleet, which claimed it at the same moment",
				OwnerName: rec.OwnerName, Since: r.now()}
		}
		return claimed{}, false, fmt.Errorf("the fleet's store did not take the claim: %w", werr)
	}
	r.leases[q.key] = l
	return res, false, nil
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
// key and opens what the claim gets (r.mu held).
func (r *registry) decideShared(q claimReq, presented string, cur fleet.Lease, found bool) (claimed, *lease, bool, error) {
	var err error
	var rec leasestore.Record
	if found {
		if rec, err = fleetRecord(cur); err != nil {
			return claimed{}, nil, false, err
		}
	}
	now := r.now()
	var res claimed
	l := r.leases[q.key]
	servedHere := l != nil && l.ep != nil
	heldElsewhere := found && slices.ContainsFunc(cur.Holders, func(id string) bool { return id != r.fleet.ID() })
	switch {
	case servedHere:
		if found {
			l.rec.Secrets = rec.Secrets // pooled agents on other edges add theirs
		}
		err = r.joinLive(l, q, presented, &res)
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
		default:
			err = &heldError{Key: q.key, Remote: "another edge of the fleet", OwnerName: rec.OwnerName, Since: rec.Since,
				SameOwner: sameOwner, Pooled: rec.Pooled}
		}
	case found && r.grace > 0 && now.Before(rec.LastSeen.Add(r.grace)):
		l = &lease{rec: rec, until: rec.LastSeen.Add(r.grace)}
		if !l.has(presented) && parseOwner(rec.Owner) != q.owner {
			return claimed{}, nil, false, &reservedError{Key: q.key, OwnerName: rec.OwnerName, Until: l.until}
		}
		err = r.openLease(l, q, presented, &res)
		res.reused = true
	default:
		// New, or lapsed: the write below replaces the lapsed version.
		l = &lease{rec: q.newRecord(now)}
		err = r.openLease(l, q, "", &res)
	}
	return res, l, servedHere, err
}

// writeShared writes rec as the fleet's lease, held by this edge, if the
// fleet's record is still cur (absent when !found).
func (r *registry) writeShared(ctx context.Context, rec leasestore.Record, cur fleet.Lease, found bool) error {
	rec.Secrets = slices.Clone(rec.Secrets)
	rec.Connected, rec.LastSeen = false, time.Time{} // the fleet's holders say these
	value, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if !found {
		_, err = r.fleet.Claim(ctx, rec.Key, value, true)
		return err
	}
	next := cur
	next.Value = value
	if !next.Held(r.fleet.ID()) {
		next.Holders = append(slices.Clone(next.Holders), r.fleet.ID())
	}
	next.Released = time.Time{}
	_, err = r.fleet.Update(ctx, next)
	return err
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
