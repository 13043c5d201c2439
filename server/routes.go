package server

import (
	"fmt"
	"sync"
	"time"
)

// udpRoute is what the registry maps a UDP port to: the older, lease-less rule
// UDP tunnels still follow (a port released by a session stays reserved for
// its owner for the grace; the same owner reclaims it, another cannot).
type udpRoute interface {
	owner() ownerID
}

type reservation struct {
	owner ownerID
	until time.Time
}

func (r *registry) claimRoute(m *sync.Map, key any, resKey string, rt udpRoute, taken error) (udpRoute, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := m.Load(key); ok {
		old := v.(udpRoute)
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

func (r *registry) releaseRoute(m *sync.Map, key any, resKey string, rt udpRoute) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !m.CompareAndDelete(key, rt) {
		return
	}
	if r.grace > 0 {
		now := r.now()
		if r.reserved == nil {
			r.reserved = map[string]reservation{}
		}
		r.reserved[resKey] = reservation{owner: rt.owner(), until: now.Add(r.grace)}
		for k, res := range r.reserved {
			if !now.Before(res.until) {
				delete(r.reserved, k)
			}
		}
	}
}

// udpPort keys UDP ports in the registry apart from TCP ports: the two are
// separate namespaces on a host.
type udpPort int

// ClaimUDPPort maps a UDP port to rt, with the same rules as ClaimHost.
func (r *registry) claimUDPPort(port int, rt udpRoute) (replaced udpRoute, err error) {
	return r.claimRoute(&r.ports, udpPort(port), fmt.Sprintf("u:%d", port), rt, errPortTaken)
}

// ReleaseUDPPort unmaps a UDP port if it still maps to rt, and reserves it
// for rt's owner for the grace period.
func (r *registry) releaseUDPPort(port int, rt udpRoute) {
	r.releaseRoute(&r.ports, udpPort(port), fmt.Sprintf("u:%d", port), rt)
}
