package server

import (
	"time"
)

// Limits bound what agents, authenticated or not, can make the edge hold.
// Zero fields take the defaults below; a tokens file entry may lower or raise
// TunnelsPerOwner for its owner.
type Limits struct {
	// Pending caps the agent connections that have not authenticated yet,
	// in all. At the cap, a new connection takes the place of the oldest
	// one that has not sent its preface yet (a silent one); without such a
	// one it is closed at once. Default 1024.
	Pending int
	// PendingPerSource caps them per source: an IPv4 address, or an IPv6
	// /64. Beyond it new connections are closed at once. Default 8.
	PendingPerSource int
	// PendingPerPrefix caps them per network: an IPv4 /24 or an IPv6 /48,
	// so a flood from many addresses of one network counts once. At the
	// cap, a new connection takes the place of the network's oldest silent
	// one. Default 64.
	PendingPerPrefix int
	// TunnelsPerSession caps the tunnels one session registers. Default 64.
	TunnelsPerSession int
	// TunnelsPerOwner caps the tunnels one owner (token) has open across
	// all its sessions. Default 256.
	TunnelsPerOwner int
	// LeasesPerOwner caps the leases one owner holds, live and offline: a
	// new lease beyond it evicts the owner's offline lease that went offline
	// first, so an agent restarted in a loop cannot hoard names or ports.
	// Default 512 (twice the default TunnelsPerOwner).
	LeasesPerOwner int
	// StreamsPerSession caps the streams open at once on one session (the
	// public connections in flight to one agent). Default 16384.
	StreamsPerSession int
	// StreamsPerOwner caps the streams open at once across all sessions of
	// one owner (token). Default 65536.
	StreamsPerOwner int
	// AuthFailureDelay is the delay before refusing a wrong token, doubled
	// for each further failure from the same source address within a
	// minute, up to 32 times. Default 250 ms.
	AuthFailureDelay time.Duration
	// WarnInterval is how often repeated warnings about one source are
	// summarised into one line with a count. Default 10 s.
	WarnInterval time.Duration
}

func (l *Limits) setDefaults() {
	if l.Pending <= 0 {
		l.Pending = 1024
	}
	if l.PendingPerSource <= 0 {
		l.PendingPerSource = 8
	}
	if l.PendingPerPrefix <= 0 {
		l.PendingPerPrefix = 64
	}
	if l.TunnelsPerSession <= 0 {
		l.TunnelsPerSession = 64
	}
	if l.TunnelsPerOwner <= 0 {
		l.TunnelsPerOwner = 256
	}
	if l.LeasesPerOwner <= 0 {
		l.LeasesPerOwner = 512
	}
	if l.StreamsPerSession <= 0 {
		l.StreamsPerSession = 16384
	}
	if l.StreamsPerOwner <= 0 {
		l.StreamsPerOwner = 65536
	}
	if l.AuthFailureDelay <= 0 {
		l.AuthFailureDelay = 250 * time.Millisecond
	}
	if l.WarnInterval <= 0 {
		l.WarnInterval = 10 * time.Second
	}
}

// limits returns the limits in force.
func (s *Server) limits() Limits { return *s.lim.Load() }
