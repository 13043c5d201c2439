// Package control defines the messages the agent and the edge exchange on the
// control stream of their mux session, and the tiny binary header the edge
// writes at the start of every stream it opens for a public connection.
//
// The wire format is described in docs/CONTROL.md. Messages are length-prefixed
// JSON: rare, small and easy to evolve; the per-connection stream header is
// binary because it is paid once per public connection.
package control

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Version is the control protocol version carried in Hello. The edge refuses a
// Hello whose version it does not speak, naming both versions.
const Version = 1

// MaxMessageSize bounds one control message. It is checked before anything is
// allocated, so a hostile peer cannot make either side reserve more than this.
const MaxMessageSize = 64 << 10

// Kind is the kind of tunnel an agent registers.
type Kind string

// The tunnel kinds.
const (
	KindHTTP Kind = "http"
	KindTCP  Kind = "tcp"
	KindUDP  Kind = "udp"
)

// Error codes carried in Error.Code. Agents switch on them to pick an exit code
// and to decide whether reconnecting can help.
const (
	CodeVersion      = "version_mismatch" // the edge does not speak the agent's protocol version
	CodeUnauthorized = "unauthorized"     // the token is wrong
	CodeNameTaken    = "name_taken"       // another token holds the requested name or hostname
	CodePortTaken    = "port_taken"       // the requested TCP port is in use or outside the allowed range
	CodeBadRequest   = "bad_request"      // a malformed or out-of-order message
	CodeInternal     = "internal"         // the edge failed for a reason of its own
	CodeForbidden    = "forbidden"        // the token's rules in the edge's tokens file do not allow the name or port
	CodeLimit        = "limit"            // a tunnel limit of the session or the token is reached
	CodeTakenOver    = "taken_over"       // another agent took this session's tunnel over (--takeover)
	CodeRevoked      = "revoked"          // the edge no longer accepts this session's token (removed on reload)
)

// Message is one control message. The concrete types are the exported structs
// of this package; Type names the wire tag of each.
type Message interface {
	Type() string
}

// Hello opens the conversation from the agent: the protocol version it speaks
// and its software name, for the edge's logs.
type Hello struct {
	Version  int    `json:"version"`
	Software string `json:"software,omitempty"`
	// Fleet says the agent keeps sessions to several edges of a fleet: an
	// edge in a fleet then lists the fleet's edges in Welcome and sends
	// Fleet messages when they change. An edge that predates the field
	// ignores it and sends neither; an agent that does not set it is never
	// sent a Fleet message, which it would not know.
	Fleet bool `json:"fleet,omitempty"`
}

// Auth carries the agent's token. The agent sends it right after Hello without
// waiting, so a session is up after one round trip.
type Auth struct {
	Token string `json:"token"`
}

// Welcome is the edge's answer to a valid Hello and Auth.
type Welcome struct {
	Version  int    `json:"version"`
	Software string `json:"software,omitempty"`
	// Session is an opaque identifier of this session, for logs on both sides.
	Session string `json:"session,omitempty"`
	// Edge is this edge's identifier in its fleet, so an agent with
	// sessions to several edges can tell when two addresses reach one
	// edge. Empty on an edge that is not in a fleet.
	Edge string `json:"edge,omitempty"`
	// Fleet lists the fleet's edges, this one included, when Hello.Fleet
	// asked for them and the edge is in a fleet.
	Fleet []Edge `json:"fleet,omitempty"`
}

// Edge is one edge of a fleet as an agent reaches it.
type Edge struct {
	// ID is the edge's identifier in the fleet (Welcome.Edge).
	ID string `json:"id"`
	// Addr is the edge's agent address, host:port.
	Addr string `json:"addr"`
}

// Fleet tells an agent that asked (Hello.Fleet) the fleet's edges after
// they changed: the whole list, which replaces the one it had.
type Fleet struct {
	Edges []Edge `json:"edges"`
}

// Register asks the edge for a tunnel. Ref is chosen by the agent and echoed in
// the Assigned or Error that answers it, so several registrations can be in
// flight on one control stream.
type Register struct {
	Ref  uint32 `json:"ref"`
	Kind Kind   `json:"kind"`
	// Name is the subdomain asked for (HTTP) or a label for the tunnel (TCP);
	// empty asks the edge to pick a random readable one.
	Name string `json:"name,omitempty"`
	// Hostname is an exact host to route to this tunnel instead of a subdomain
	// of the edge's domain (HTTP only).
	Hostname string `json:"hostname,omitempty"`
	// RemotePort is the public TCP or UDP port asked for (TCP and UDP only);
	// 0 lets the edge choose one.
	RemotePort int `json:"remote_port,omitempty"`
	// Lease is the secret of an earlier Assigned for this tunnel. Presenting
	// it gets the same name or port back, even one the edge chose at random
	// and even while the edge still thinks the old session is alive.
	Lease string `json:"lease,omitempty"`
	// Pool asks to share the name or port with the other agents of the same
	// owner that also ask to pool it: connections are spread across them.
	Pool bool `json:"pool,omitempty"`
	// Takeover asks to replace a live holder of the same owner (one whose
	// session is half-dead); the holder is told and stops.
	Takeover bool `json:"takeover,omitempty"`
	// ProxyProtocol ("v1" or "v2") asks the edge for version 2 stream
	// headers, which carry the public address the client connected to, and,
	// on an HTTP tunnel, for a stream per public connection instead of
	// streams shared between clients. The agent writes the PROXY header
	// itself. An edge that does not know the field ignores it, and then does
	// not echo it in Assigned.
	ProxyProtocol string `json:"proxy_protocol,omitempty"`
	// Policy is the tunnel's traffic policy in its JSON form (see package
	// policy and docs/POLICY.md): rules the edge enforces before it opens a
	// stream. An edge that knows the field compiles it and refuses the
	// registration (bad_request, naming the rule) when it cannot enforce it,
	// and echoes a summary in Assigned.Policy; one that predates it ignores
	// it, and the agent then stops rather than run unprotected.
	Policy json.RawMessage `json:"policy,omitempty"`
	// PolicyEvents asks the edge to tell the agent when its policy refused a
	// client (PolicyRefused messages).
	PolicyEvents bool `json:"policy_events,omitempty"`
}

// Assigned tells the agent its tunnel is live.
type Assigned struct {
	Ref uint32 `json:"ref"`
	// Tunnel identifies the tunnel in the header of every stream the edge opens
	// for it (see StreamHeader). It is valid for this session only.
	Tunnel   uint32 `json:"tunnel"`
	Kind     Kind   `json:"kind"`
	Name     string `json:"name"`
	Hostname string `json:"hostname,omitempty"`
	Port     int    `json:"port,omitempty"`
	// URL is what a person or program uses to reach the tunnel:
	// http://name.domain:port for HTTP, tcp://host:port for TCP,
	// udp://host:port for UDP.
	URL string `json:"url"`
	// Lease is the secret to present in Register.Lease when reconnecting, to
	// get this name or port back.
	Lease string `json:"lease,omitempty"`
	// ProxyProtocol echoes Register.ProxyProtocol when the edge honours it.
	ProxyProtocol string `json:"proxy_protocol,omitempty"`
	// Policy summarises the rules the edge enforces on this tunnel (the
	// operator's, the owner's and the agent's; never their secrets). It is
	// set whenever Register.Policy was.
	Policy string `json:"policy,omitempty"`
}

// PolicyRefused tells an agent that asked for it (Register.PolicyEvents)
// that the edge's policy answered clients of its tunnel itself. It carries
// what the inspector shows, never a body: the rule, the action, the status
// and the first request's method, path and client. Count is how many
// refusals by that rule it stands for since the last message (the edge
// batches them).
type PolicyRefused struct {
	Tunnel uint32 `json:"tunnel"`
	Source string `json:"source"`
	Rule   string `json:"rule"`
	Action string `json:"action"`
	// Status is the HTTP status the client got, 0 for a refused TCP
	// connection or dropped UDP datagram.
	Status int    `json:"status,omitempty"`
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
	Client string `json:"client,omitempty"`
	Count  uint64 `json:"count"`
}

// Error reports a failure. Ref is the Register it answers, or 0 for a failure
// of the whole session (after which the edge closes it).
type Error struct {
	Ref     uint32 `json:"ref,omitempty"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Type implements Message.
func (Hello) Type() string { return "hello" }

// Type implements Message.
func (Auth) Type() string { return "auth" }

// Type implements Message.
func (Welcome) Type() string { return "welcome" }

// Type implements Message.
func (Register) Type() string { return "register" }

// Type implements Message.
func (Assigned) Type() string { return "assigned" }

// Type implements Message.
func (*Error) Type() string { return "error" }

// Type implements Message.
func (PolicyRefused) Type() string { return "policy_refused" }

// Type implements Message.
func (Fleet) Type() string { return "fleet" }

// Error makes *Error usable as a Go error, so the agent can return what the edge
// said unchanged.
func (e *Error) Error() string {
	return fmt.Sprintf("edge refused (%s): %s", e.Code, e.Message)
}

// envelope is the JSON shape on the wire: the type tag beside the body, so a
// reader picks the concrete type before decoding the body.
type envelope struct {
	Type string          `json:"type"`
	Body json.RawMessage `json:"body"`
}

// ErrMessageTooLarge is returned when a peer announces a control message larger
// than MaxMessageSize.
var ErrMessageTooLarge = errors.New("control: message larger than 64 KiB (peer is not a sluice endpoint or is misbehaving)")

// WriteMessage writes m to w as one length-prefixed frame, in a single Write so
// that concurrent writers serialized by the caller never interleave.
func WriteMessage(w io.Writer, m Message) error {
	env, err := encode(m)
	if err != nil {
		return err
	}
	if len(env) > MaxMessageSize {
		return fmt.Errorf("control: %s message is %d bytes, over the %d byte limit: shorten names and tokens", m.Type(), len(env), MaxMessageSize)
	}
	buf := make([]byte, 4+len(env))
	binary.BigEndian.PutUint32(buf, uint32(len(env)))
	copy(buf[4:], env)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("control: send %s: %w", m.Type(), err)
	}
	return nil
}

// encode returns m's envelope as JSON. '<', '>' and '&' are written as they
// are: the default HTML escaping would make a message up to six times longer
// on the wire than the text it carries.
func encode(m Message) ([]byte, error) {
	var body, env bytes.Buffer
	be := json.NewEncoder(&body)
	be.SetEscapeHTML(false)
	if err := be.Encode(m); err != nil {
		return nil, fmt.Errorf("control: encode %s: %w", m.Type(), err)
	}
	ee := json.NewEncoder(&env)
	ee.SetEscapeHTML(false)
	if err := ee.Encode(envelope{Type: m.Type(), Body: bytes.TrimSuffix(body.Bytes(), []byte("\n"))}); err != nil {
		return nil, fmt.Errorf("control: encode %s: %w", m.Type(), err)
	}
	return bytes.TrimSuffix(env.Bytes(), []byte("\n")), nil
}

// ReadMessage reads one frame written by WriteMessage and returns the concrete
// message (Hello, Auth, Welcome, Register, Assigned, PolicyRefused, Fleet or *Error). An unknown type
// or malformed body is an error: the protocol is versioned through Hello, so a
// peer that speaks the same version never sends one.
func ReadMessage(r io.Reader) (Message, error) {
	var lenBuf [4]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(lenBuf[:])
	if n > MaxMessageSize {
		return nil, ErrMessageTooLarge
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("control: read message body: %w", err)
	}
	// Invalid UTF-8 would decode to U+FFFD, three bytes for one, and a
	// message read must be one this side could write again.
	if !utf8.Valid(buf) {
		return nil, errors.New("control: malformed message: not valid UTF-8 (peer is not a sluice endpoint or is misbehaving)")
	}
	var env envelope
	if err := json.Unmarshal(buf, &env); err != nil {
		return nil, fmt.Errorf("control: malformed message: %w", err)
	}
	var m Message
	switch env.Type {
	case "hello":
		m = &Hello{}
	case "auth":
		m = &Auth{}
	case "welcome":
		m = &Welcome{}
	case "register":
		m = &Register{}
	case "assigned":
		m = &Assigned{}
	case "error":
		m = &Error{}
	case "policy_refused":
		m = &PolicyRefused{}
	case "fleet":
		m = &Fleet{}
	default:
		return nil, fmt.Errorf("control: unknown message type %q (peer speaks a different protocol version?)", env.Type)
	}
	if len(env.Body) == 0 {
		return nil, fmt.Errorf("control: %s message has no body", env.Type)
	}
	if err := json.Unmarshal(env.Body, m); err != nil {
		return nil, fmt.Errorf("control: malformed %s message: %w", env.Type, err)
	}
	// Written again, a message can grow past the limit even without HTML
	// escaping: U+2028 and U+2029 are always escaped (three bytes become
	// six) and fields left out are written. Refuse it here, where the
	// peer's mistake is visible, rather than fail later when a value from
	// it is sent on.
	again, err := encode(m)
	if err != nil {
		return nil, err
	}
	if len(again) > MaxMessageSize {
		return nil, fmt.Errorf("control: %s message would not fit in %d bytes when written again: %w", env.Type, MaxMessageSize, ErrMessageTooLarge)
	}
	// Return values, not pointers, for every type but *Error, so callers switch
	// on plain types and *Error stays usable as an error.
	switch v := m.(type) {
	case *Hello:
		return *v, nil
	case *Auth:
		return *v, nil
	case *Welcome:
		return *v, nil
	case *Register:
		return *v, nil
	case *Assigned:
		return *v, nil
	case *PolicyRefused:
		return *v, nil
	case *Fleet:
		return *v, nil
	}
	return m, nil
}
