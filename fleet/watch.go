package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A watch is a JetStream consumer placed on one node; when that node goes,
// the watch may fall silent without an error. Every edge renews its
// membership each heartbeat, so its own watch must deliver its own renewal:
// when one is overdue the watches are made again, and the edge's copy is
// replaced by what the new watches find, with an event for each difference.

// startWatches makes both watches, reads what they find now, replaces the
// copy with it and starts delivering changes. notify sends events for the
// differences with the copy it replaces.
func (s *Store) startWatches(ctx context.Context, notify bool) error {
	// A watch lives as long as the context it was made with.
	lw, err := s.leases.WatchAll(s.life)
	if err != nil {
		return err
	}
	ew, err := s.edges.WatchAll(s.life)
	if err != nil {
		go lw.Stop()
		return err
	}
	leases := map[string]Lease{}
	members := map[string]Member{}
	// The watches send every current entry, then nil.
	err = initial(ctx, lw, func(e jetstream.KeyValueEntry) {
		if l, ok := s.leaseEntry(e); ok {
			leases[l.Key] = l
		}
	})
	if err == nil {
		err = initial(ctx, ew, func(e jetstream.KeyValueEntry) {
			if m, ok := memberEntry(e); ok {
				members[m.ID] = m
			}
		})
	}
	if err != nil {
		go lw.Stop()
		go ew.Stop()
		return err
	}
	s.adopt(leases, members, notify)
	if m, ok := members[s.id]; ok && m.ID == s.id {
		s.ownSeen.Store(max(s.ownSeen.Load(), 1))
	}
	old := s.watching
	s.watching = make(chan struct{})
	if old != nil {
		close(old)
	}
	s.wg.Add(1)
	go s.watch(lw, ew, s.watching)
	return nil
}

func initial(ctx context.Context, w jetstream.KeyWatcher, f func(jetstream.KeyValueEntry)) error {
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("fleet: the store closed a watch")
			}
			if e == nil {
				return nil
			}
			if e.Operation() == jetstream.KeyValuePut {
				f(e)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// adopt replaces the copy with what fresh watches found.
func (s *Store) adopt(leases map[string]Lease, members map[string]Member, notify bool) {
	var events []Event
	s.mu.Lock()
	for k, old := range s.cache {
		if _, ok := leases[k]; !ok {
			delete(s.cache, k)
			events = append(events, Event{Kind: LeaseGone, Lease: Lease{Key: k, Revision: old.Revision}})
		}
	}
	for k, l := range leases {
		if old, ok := s.cache[k]; !ok || old.Revision < l.Revision {
			s.cache[k] = l
			events = append(events, Event{Kind: LeaseSet, Lease: l})
		}
	}
	for id, m := range s.members {
		if _, ok := members[id]; !ok {
			delete(s.members, id)
			if id != s.id {
				s.gone[id] = true
			}
			events = append(events, Event{Kind: EdgeDown, Member: m})
		}
	}
	for id, m := range members {
		if _, ok := s.members[id]; !ok {
			events = append(events, Event{Kind: EdgeUp, Member: m})
		}
		s.members[id] = m
		delete(s.gone, id)
	}
	// What edges no longer members still hold is theirs no more.
	for _, l := range s.cache {
		for _, h := range l.Holders {
			if _, ok := s.members[h]; !ok {
				s.gone[h] = true
			}
		}
	}
	sweep := len(s.gone) > 0
	s.mu.Unlock()
	if sweep {
		s.kickSweep()
	}
	if notify && s.cfg.OnEvent != nil {
		for _, ev := range events {
			s.cfg.OnEvent(ev)
		}
	}
}

// watch keeps this edge's copy of the fleet current until Close or until
// the watches are replaced.
func (s *Store) watch(lw, ew jetstream.KeyWatcher, end chan struct{}) {
	defer s.wg.Done()
	defer func() {
		// Stopping asks the store to delete the consumers, which may wait
		// out a timeout while it elects a leader; nothing waits on it.
		go lw.Stop()
		go ew.Stop()
	}()
	for {
		select {
		case e, ok := <-lw.Updates():
			if !ok {
				return
			}
			if e != nil {
				s.applyLease(e)
			}
		case e, ok := <-ew.Updates():
			if !ok {
				return
			}
			if e != nil {
				s.applyEdge(e)
			}
		case <-end:
			return
		case <-s.stop:
			return
		}
	}
}

func (s *Store) leaseEntry(e jetstream.KeyValueEntry) (Lease, bool) {
	l, err := decodeLease(e)
	if err != nil {
		s.cfg.Logger.Warn("fleet: unreadable lease in the store; ignored", "key", e.Key(), "err", err)
		return Lease{}, false
	}
	return l, true
}

func memberEntry(e jetstream.KeyValueEntry) (Member, bool) {
	var m Member
	if err := json.Unmarshal(e.Value(), &m); err != nil || m.ID != e.Key() {
		return Member{}, false
	}
	return m, true
}

func (s *Store) applyLease(e jetstream.KeyValueEntry) {
	key, err := decodeKey(e.Key())
	if err != nil {
		return
	}
	var ev Event
	s.mu.Lock()
	if e.Operation() == jetstream.KeyValuePut {
		l, ok := s.leaseEntry(e)
		if !ok {
			s.mu.Unlock()
			return
		}
		// An older version than the copy's is stale; the same one is a
		// change this edge made and remembered, which is still news to
		// whoever listens.
		if cur, ok := s.cache[key]; ok && cur.Revision > l.Revision {
			s.mu.Unlock()
			return
		}
		s.cache[key] = l
		ev = Event{Kind: LeaseSet, Lease: l}
	} else {
		if cur, ok := s.cache[key]; !ok || cur.Revision > e.Revision() {
			s.mu.Unlock()
			return // unknown, or made again since
		}
		delete(s.cache, key)
		ev = Event{Kind: LeaseGone, Lease: Lease{Key: key, Revision: e.Revision()}}
	}
	s.mu.Unlock()
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(ev)
	}
}

func (s *Store) applyEdge(e jetstream.KeyValueEntry) {
	id := e.Key()
	if id == s.id && e.Operation() == jetstream.KeyValuePut {
		s.ownSeen.Store(max(s.ownSeen.Load(), e.Revision()))
	}
	var ev Event
	s.mu.Lock()
	if e.Operation() == jetstream.KeyValuePut {
		m, ok := memberEntry(e)
		if !ok {
			s.mu.Unlock()
			return
		}
		_, known := s.members[id]
		s.members[id] = m
		delete(s.gone, id)
		if known {
			s.mu.Unlock()
			return
		}
		ev = Event{Kind: EdgeUp, Member: m}
	} else {
		m, known := s.members[id]
		delete(s.members, id)
		if id != s.id {
			s.gone[id] = true
		}
		if !known {
			s.mu.Unlock()
			return
		}
		ev = Event{Kind: EdgeDown, Member: m}
	}
	s.mu.Unlock()
	if ev.Kind == EdgeDown {
		if id == s.id {
			s.cfg.Logger.Warn("fleet: this edge's membership expired (the store was out of reach); joining again")
		} else {
			s.kickSweep()
		}
	}
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(ev)
	}
}

// checkWatch is called by the heartbeat after renewing at revision rev: if
// an earlier renewal has not come back through the watch within two
// heartbeats, the watches are made again.
func (s *Store) checkWatch(rev uint64) {
	now := time.Now()
	if s.checkRev == 0 || s.ownSeen.Load() >= s.checkRev {
		s.checkRev, s.checkAt = rev, now
		return
	}
	if now.Sub(s.checkAt) < 2*s.cfg.Heartbeat {
		return
	}
	s.cfg.Logger.Info("fleet: the store's watch fell silent (a node left); watching again")
	ctx, cancel := context.WithTimeout(s.life, s.cfg.OpTimeout)
	err := s.startWatches(ctx, true)
	cancel()
	if err != nil {
		s.cfg.Logger.Warn("fleet: cannot watch the store again yet", "err", err)
		return
	}
	s.checkRev, s.checkAt = rev, now
}
