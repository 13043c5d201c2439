package console

import (
	"errors"
	"time"
)

// Backend is one edge as the console sees it: a snapshot of what it holds,
// a signal when that changes, and the operator's actions. The edge
// implements it for itself (server.Server.ConsoleBackend); a fleet hands
// the console one Backend per edge.
type Backend interface {
	// Snapshot returns the edge's state now. Counters in it (bytes,
	// requests) only grow while a tunnel lives; the console derives rates
	// from successive snapshots.
	Snapshot() Snapshot
	// Changed returns a channel closed at the edge's next change (an agent
	// or tunnel coming or going, a refusal): the console then refreshes at
	// once instead of at its next tick.
	Changed() <-chan struct{}
	// Disconnect closes an agent session; the agent reconnects.
	Disconnect(session string, by Actor) error
	// RevokeToken stops accepting a token (by Token.ID) for good: its
	// sessions are told and closed, and the edge's tokens file no longer
	// lists it.
	RevokeToken(id string, by Actor) error
	// ReleaseLease frees a name or port held for an agent that went away
	// (Lease.Key), so another owner may claim it before the grace ends.
	ReleaseLease(key string, by Actor) error
}

// Actor is who asked for an action: written into the edge's log beside it.
type Actor struct {
	Name string // as given at sign-in, or "api" for the bearer token
	Addr string // the browser's or client's address
}

func (a Actor) String() string { return a.Name + " from " + a.Addr }

// ErrNotFound means an action's target is not (or no longer) there.
var ErrNotFound = errors.New("not found")

// Snapshot is one edge's state at one moment.
type Snapshot struct {
	Edge         Edge          `json:"edge"`
	Time         time.Time     `json:"time"`
	Sessions     []Session     `json:"sessions"`
	Tunnels      []Tunnel      `json:"tunnels"`
	Owners       []Owner       `json:"owners"`
	Leases       []Lease       `json:"leases"` // held in grace: offline
	Refusals     []Refusal     `json:"refusals"`
	Certificates []Certificate `json:"certificates"`
}

// Edge names the edge a snapshot is of.
type Edge struct {
	ID      string    `json:"id"` // unique in a fleet, e.g. host:agent-port
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	Agents  string    `json:"agents_addr"`
	HTTP    string    `json:"http_addr,omitempty"`
	HTTPS   string    `json:"https_addr,omitempty"`
}

// Session is one connected agent session.
type Session struct {
	ID         string        `json:"id"`
	Owner      string        `json:"owner"`
	TokenID    string        `json:"token_id"`
	RemoteAddr string        `json:"remote_addr"`
	Software   string        `json:"software"` // the agent's version, as it says in its hello
	Since      time.Time     `json:"since"`
	RTT        time.Duration `json:"rtt_ns"`
	Streams    int           `json:"streams"`
	Tunnels    int           `json:"tunnels"`
	// Reconnects counts how often the agent came back for its tunnels'
	// names and ports (it presented their lease) while this edge ran.
	Reconnects int `json:"reconnects"`
}

// Tunnel is one tunnel online: one agent's membership of a public address.
type Tunnel struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Kind      string    `json:"kind"`
	Name      string    `json:"name"`
	Owner     string    `json:"owner"`
	Session   string    `json:"session"`
	AgentAddr string    `json:"agent_addr"`
	Since     time.Time `json:"since"`
	Members   int       `json:"members"` // agents sharing the address (pooled), this one included
	Streams   int64     `json:"streams"`
	BytesIn   int64     `json:"bytes_in"` // from public clients toward the agent
	BytesOut  int64     `json:"bytes_out"`
	// Requests counts HTTP responses by class: [0] 1xx ... [4] 5xx.
	Requests [5]int64 `json:"requests"`
}

// Owner is one owner of tokens: what it may hold and what it holds.
type Owner struct {
	Name       string  `json:"name"`
	Tokens     []Token `json:"tokens"`
	Sessions   int     `json:"sessions"`
	Tunnels    int     `json:"tunnels"`
	MaxTunnels int     `json:"max_tunnels"`
	Streams    int64   `json:"streams"`
	MaxStreams int     `json:"max_streams"`
	Leases     int     `json:"leases"` // addresses held, live and in grace
	MaxLeases  int     `json:"max_leases"`
	Names      string  `json:"names,omitempty"` // the hostname patterns it may claim; empty: any
	Ports      string  `json:"ports,omitempty"`
}

// Token is one accepted token, by a public ID (never the secret).
type Token struct {
	ID     string `json:"id"`
	Source string `json:"source"` // "tokens file entry 3", "configuration"
	// Revocable is false for tokens given in the edge's configuration
	// rather than its tokens file: there is nothing to rewrite.
	Revocable bool `json:"revocable"`
	Sessions  int  `json:"sessions"`
}

// Lease is a public name or port held for an agent that went away.
type Lease struct {
	Key   string    `json:"key"`
	Label string    `json:"label"` // "app.example.com", "TCP port 4000"
	Owner string    `json:"owner"`
	Until time.Time `json:"until"`
}

// Refusal kinds.
const (
	RefusedAuth      = "auth"      // a wrong token
	RefusedLimit     = "limit"     // a limit of the source, owner or session
	RefusedPolicy    = "policy"    // a rule forbids the name, port or request
	RefusedHandshake = "handshake" // a broken or foreign client
	RefusedClaim     = "claim"     // the name or port is someone else's
)

// Refusal summarises one reason the edge refused something, since it
// started.
type Refusal struct {
	Kind       string    `json:"kind"`
	Reason     string    `json:"reason"`
	Count      int64     `json:"count"`
	Sources    int       `json:"sources"` // distinct, up to a bound
	LastSource string    `json:"last_source"`
	Last       time.Time `json:"last"`
}

// Certificate is one certificate the edge serves, or one it is trying to
// obtain.
type Certificate struct {
	Listener string    `json:"listener"` // "agents", "https"
	Subject  string    `json:"subject"`
	Issuer   string    `json:"issuer,omitempty"`
	NotAfter time.Time `json:"not_after,omitzero"`
	// State is "static" (from a file), "issued" (ACME) or "failing" (ACME,
	// held off until Retry).
	State     string    `json:"state"`
	Renewal   time.Time `json:"renewal,omitzero"` // ACME: when renewal starts
	Retry     time.Time `json:"retry,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}
