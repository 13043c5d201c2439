package agent

import (
	"sync"

	"github.com/sluicehq/sluice/control"
)

// lease is what the edge assigned to a tunnel: presented on every
// reconnect, it gets the same URL back, random names and ports included,
// even from an edge that restarted.
type lease struct {
	mu       sync.Mutex
	assigned control.Assigned
	held     bool
}

func (l *lease) keep(a control.Assigned) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.assigned, l.held = a, true
}

// register builds the Register for this tunnel: the configured request on
// the first session, the assigned name or port and its lease afterwards.
func (ts *tunnelState) register(ref uint32) control.Register {
	t := ts.cfg
	r := control.Register{Ref: ref, Kind: t.Kind, Name: t.Name, Hostname: t.Hostname, RemotePort: t.RemotePort, Pool: t.Pool, Takeover: t.Takeover, ProxyProtocol: t.ProxyProtocol,
		Policy: ts.policyWire(), PolicyEvents: true}
	ts.lease.mu.Lock()
	defer ts.lease.mu.Unlock()
	if !ts.lease.held {
		return r
	}
	a := ts.lease.assigned
	r.Lease = a.Lease
	r.Takeover = false // it was taken over once; after that the lease speaks
	switch t.Kind {
	case control.KindHTTP:
		if t.Hostname == "" {
			r.Name = a.Name
		}
	case control.KindTCP, control.KindUDP:
		r.RemotePort = a.Port
	}
	return r
}
