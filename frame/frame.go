// Package frame is sluice's wire codec: the connection preface and the
// fixed-size, length-prefixed frame header described in docs/PROTOCOL.md.
//
// The package reads and writes frames without allocating on the steady path:
// headers decode into a value, control payloads decode into fields of that
// value, and DATA payloads are left on the wire for the caller to read into a
// buffer of its own. Every field is validated before anything is allocated,
// and every violation is an *Error carrying the code the session ends with:
// in this version of the protocol a violation always ends the whole
// session, never one stream alone.
package frame

import (
	"encoding/binary"
	"fmt"
)

// Version is the protocol version every preface carries: version 1
// implementations refuse any other number, so later versions are
// negotiated after the preface, with a version offer (AppendVersionOffer).
const Version uint16 = 1

// MaxVersion is the highest protocol version this package speaks, the one
// it offers. Version 2 adds SETTINGS.
const MaxVersion uint16 = 2

// Magic opens every connection, followed by the two-byte Version.
const Magic = "SLUICE"

// PrefaceSize is the length of the connection preface: Magic + version.
const PrefaceSize = len(Magic) + 2

// HeaderSize is the fixed size of every frame header.
const HeaderSize = 12

// MaxDataPayload is the largest DATA payload a receiver must accept.
const MaxDataPayload = 64 << 10

// InitialStreamWindow is the credit each side holds for a new stream, in
// each direction, before any WINDOW_UPDATE.
const InitialStreamWindow = 256 << 10

// InitialSessionWindow is the session-wide credit each side holds at start.
const InitialSessionWindow = 16 << 20

// MaxWindow is the largest credit a receiver may grant (stream or session).
const MaxWindow = 1<<31 - 1

// Type is a frame type.
type Type uint8

// Frame types. The numbering is part of the wire format.
const (
	TypeData         Type = 0x0
	TypeOpen         Type = 0x1
	TypeClose        Type = 0x2
	TypeReset        Type = 0x3
	TypeWindowUpdate Type = 0x4
	TypePing         Type = 0x5
	TypePong         Type = 0x6
	TypeGoAway       Type = 0x7
	// TypeSettings (version 2) announces one of the sender's settings, or,
	// with FlagAck, acknowledges one of the peer's.
	TypeSettings Type = 0x8
	typeCount         = 9
)

var typeNames = [typeCount]string{"DATA", "OPEN", "CLOSE", "RESET", "WINDOW_UPDATE", "PING", "PONG", "GOAWAY", "SETTINGS"}

func (t Type) String() string {
	if int(t) < typeCount {
		return typeNames[t]
	}
	return fmt.Sprintf("UNKNOWN_TYPE(0x%02x)", uint8(t))
}

// Flags is the flag byte of a frame header. Version 1 defines none, and
// version 2 only FlagAck on SETTINGS; any other set bit is a protocol
// error, so that later versions can give them meaning without being
// misread.
type Flags uint8

// FlagAck marks a SETTINGS frame that acknowledges the peer's.
const FlagAck Flags = 0x1

// Setting identifiers, carried by SETTINGS. A receiver acknowledges a
// setting it does not know and otherwise ignores it.
const (
	// SettingInitialStreamWindow is the credit the sender grants, in each
	// stream the receiver opens after acknowledging it, before any
	// WINDOW_UPDATE: frame.InitialStreamWindow … MaxWindow.
	SettingInitialStreamWindow uint32 = 0x1
)

// streamRule says where a frame type may appear.
type streamRule uint8

const (
	onStream  streamRule = iota // stream ID must be non-zero
	onSession                   // stream ID must be zero
	onEither                    // zero (session) or non-zero (stream)
)

// typeSpec holds what the decoder checks for each type.
type typeSpec struct {
	where      streamRule
	minLen     uint32
	maxLen     uint32
	fixedValue bool  // the payload is a fixed-size value decoded into the Header
	flags      Flags // the flags the type may carry
}

var specs = [typeCount]typeSpec{
	TypeData:         {where: onStream, minLen: 0, maxLen: MaxDataPayload},
	TypeOpen:         {where: onStream},
	TypeClose:        {where: onStream},
	TypeReset:        {where: onStream, minLen: 4, maxLen: 4, fixedValue: true},
	TypeWindowUpdate: {where: onEither, minLen: 4, maxLen: 4, fixedValue: true},
	TypePing:         {where: onSession, minLen: 8, maxLen: 8, fixedValue: true},
	TypePong:         {where: onSession, minLen: 8, maxLen: 8, fixedValue: true},
	TypeGoAway:       {where: onSession, minLen: 4, maxLen: 4, fixedValue: true},
	TypeSettings:     {where: onSession, minLen: 8, maxLen: 8, fixedValue: true, flags: FlagAck},
}

// Header is one decoded frame header. For control frames with a fixed
// payload (RESET, WINDOW_UPDATE, PING, PONG, GOAWAY) the payload is decoded
// into Value and Length says how long it was on the wire.
type Header struct {
	Length   uint32 // payload bytes that follow the header
	Type     Type
	Flags    Flags
	StreamID uint32
	// Value is the decoded fixed payload: the error code of RESET and
	// GOAWAY, the credit increment of WINDOW_UPDATE, the opaque 8 bytes of
	// PING and PONG, the setting of SETTINGS (see Setting).
	Value uint64
}

// Setting splits the payload of a SETTINGS frame into the setting's
// identifier and its value.
func (h Header) Setting() (id, value uint32) { return uint32(h.Value >> 32), uint32(h.Value) }

func (h Header) String() string {
	return fmt.Sprintf("%s stream=%d len=%d flags=0x%02x value=%d", h.Type, h.StreamID, h.Length, uint8(h.Flags), h.Value)
}

// Code is an error code carried by RESET and GOAWAY.
type Code uint32

// Error codes. The numbering is part of the wire format.
const (
	CodeNoError       Code = 0x0 // graceful: GOAWAY on shutdown
	CodeProtocol      Code = 0x1 // the peer broke a rule of the protocol
	CodeInternal      Code = 0x2 // the sender failed on its own side (a read that failed there)
	CodeFlowControl   Code = 0x3 // the peer sent beyond its credit
	CodeStreamClosed  Code = 0x4 // a frame arrived for a stream in the wrong state
	CodeFrameSize     Code = 0x5 // a frame's length is wrong for its type
	CodeRefusedStream Code = 0x6 // the stream was refused before any processing (limits, GOAWAY)
	CodeCancel        Code = 0x7 // the stream is no longer wanted
	CodeKeepalive     Code = 0x8 // the peer stopped answering
	CodeVersion       Code = 0x9 // the preface was not ours or named another version
)

var codeNames = map[Code]string{
	CodeNoError: "NO_ERROR", CodeProtocol: "PROTOCOL_ERROR", CodeInternal: "INTERNAL_ERROR",
	CodeFlowControl: "FLOW_CONTROL_ERROR", CodeStreamClosed: "STREAM_CLOSED", CodeFrameSize: "FRAME_SIZE_ERROR",
	CodeRefusedStream: "REFUSED_STREAM", CodeCancel: "CANCEL", CodeKeepalive: "KEEPALIVE_TIMEOUT", CodeVersion: "VERSION_MISMATCH",
}

func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("UNKNOWN_CODE(0x%x)", uint32(c))
}

// Error is a protocol violation found while decoding or processing a
// frame. Every violation ends the session: version 1 of the protocol has
// no violation that spares the connection (docs/PROTOCOL.md, section 6).
type Error struct {
	Code   Code
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("sluice protocol error (%s): %s", e.Code, e.Reason)
}

// SessionError returns an *Error, which ends the session.
func SessionError(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// ParseHeader decodes and validates the 12-byte header in b. It does not
// decode fixed payloads; Reader.Next does that.
func ParseHeader(b []byte) (Header, error) {
	_ = b[HeaderSize-1]
	h := Header{
		Length:   binary.BigEndian.Uint32(b[0:4]),
		Type:     Type(b[4]),
		Flags:    Flags(b[5]),
		StreamID: binary.BigEndian.Uint32(b[8:12]),
	}
	if int(h.Type) >= typeCount {
		return h, SessionError(CodeProtocol, "unknown frame type 0x%02x", uint8(h.Type))
	}
	spec := specs[h.Type]
	if h.Flags&^spec.flags != 0 {
		return h, SessionError(CodeProtocol, "%s frame has undefined flags 0x%02x set", h.Type, uint8(h.Flags&^spec.flags))
	}
	if b[6] != 0 || b[7] != 0 {
		return h, SessionError(CodeProtocol, "%s frame has non-zero reserved bytes 0x%02x%02x", h.Type, b[6], b[7])
	}
	if h.StreamID>>31 != 0 {
		return h, SessionError(CodeProtocol, "%s frame has the reserved high bit of the stream ID set (0x%08x)", h.Type, h.StreamID)
	}
	if h.Length < spec.minLen || h.Length > spec.maxLen {
		if spec.minLen == spec.maxLen {
			return h, SessionError(CodeFrameSize, "%s frame has a %d-byte payload; it must be %d", h.Type, h.Length, spec.maxLen)
		}
		return h, SessionError(CodeFrameSize, "%s frame has a %d-byte payload; the maximum is %d", h.Type, h.Length, spec.maxLen)
	}
	switch spec.where {
	case onStream:
		if h.StreamID == 0 {
			return h, SessionError(CodeProtocol, "%s frame on stream 0; it belongs to a stream", h.Type)
		}
	case onSession:
		if h.StreamID != 0 {
			return h, SessionError(CodeProtocol, "%s frame on stream %d; it belongs to the session (stream 0)", h.Type, h.StreamID)
		}
	}
	return h, nil
}

// PutHeader encodes h into b[:HeaderSize] without its fixed payload.
func PutHeader(b []byte, h Header) {
	_ = b[HeaderSize-1]
	binary.BigEndian.PutUint32(b[0:4], h.Length)
	b[4] = byte(h.Type)
	b[5] = byte(h.Flags)
	b[6], b[7] = 0, 0
	binary.BigEndian.PutUint32(b[8:12], h.StreamID)
}

// AppendHeader appends the header of a frame of type t to b.
func AppendHeader(b []byte, t Type, streamID uint32, length uint32) []byte {
	var hdr [HeaderSize]byte
	PutHeader(hdr[:], Header{Length: length, Type: t, StreamID: streamID})
	return append(b, hdr[:]...)
}

// AppendData appends a DATA header for a payload of n bytes; the caller
// sends the payload right after it.
func AppendData(b []byte, streamID uint32, n int) []byte {
	return AppendHeader(b, TypeData, streamID, uint32(n))
}

// AppendOpen appends an OPEN frame.
func AppendOpen(b []byte, streamID uint32) []byte { return AppendHeader(b, TypeOpen, streamID, 0) }

// AppendClose appends a CLOSE frame (the sender's half-close).
func AppendClose(b []byte, streamID uint32) []byte { return AppendHeader(b, TypeClose, streamID, 0) }

// AppendReset appends a RESET frame with an error code.
func AppendReset(b []byte, streamID uint32, code Code) []byte {
	b = AppendHeader(b, TypeReset, streamID, 4)
	return binary.BigEndian.AppendUint32(b, uint32(code))
}

// AppendWindowUpdate appends a WINDOW_UPDATE granting increment more bytes
// of credit on a stream, or on the session when streamID is 0.
func AppendWindowUpdate(b []byte, streamID uint32, increment uint32) []byte {
	b = AppendHeader(b, TypeWindowUpdate, streamID, 4)
	return binary.BigEndian.AppendUint32(b, increment)
}

// AppendPing appends a PING (or, with pong set, a PONG) carrying opaque.
func AppendPing(b []byte, pong bool, opaque uint64) []byte {
	t := TypePing
	if pong {
		t = TypePong
	}
	b = AppendHeader(b, t, 0, 8)
	return binary.BigEndian.AppendUint64(b, opaque)
}

// AppendGoAway appends a GOAWAY frame with an error code.
func AppendGoAway(b []byte, code Code) []byte {
	b = AppendHeader(b, TypeGoAway, 0, 4)
	return binary.BigEndian.AppendUint32(b, uint32(code))
}

// AppendSettings appends a SETTINGS frame announcing a setting, or with ack
// set acknowledging the peer's (the same identifier and value, echoed).
func AppendSettings(b []byte, ack bool, id, value uint32) []byte {
	var flags Flags
	if ack {
		flags = FlagAck
	}
	var hdr [HeaderSize]byte
	PutHeader(hdr[:], Header{Length: 8, Type: TypeSettings, Flags: flags})
	b = append(b, hdr[:]...)
	return binary.BigEndian.AppendUint64(b, uint64(id)<<32|uint64(value))
}

// versionOfferTag is the top 48 bits of a version offer's 8 bytes: the
// magic of the preface, so that no PING's answer can be taken for one.
const versionOfferTag = 0x534C55494345 // "SLUICE"

// AppendVersionOffer appends the version offer: a PONG, which version 1
// peers ignore (a PONG that answers no PING of theirs), carrying Magic
// and MaxVersion. A side that speaks version 2 or later sends it as its
// first frame after the preface (docs/PROTOCOL.md, section 2).
func AppendVersionOffer(b []byte) []byte {
	return AppendPing(b, true, versionOfferTag<<16|uint64(MaxVersion))
}

// VersionOffer reports the version a peer offers if h is a version offer
// (a PONG carrying Magic and a version of 2 or more).
func VersionOffer(h Header) (version uint16, ok bool) {
	if h.Type != TypePong || h.Value>>16 != versionOfferTag || uint16(h.Value) < 2 {
		return 0, false
	}
	return uint16(h.Value), true
}

// AppendPreface appends the connection preface.
func AppendPreface(b []byte) []byte {
	b = append(b, Magic...)
	return binary.BigEndian.AppendUint16(b, Version)
}

// ParsePreface validates a received preface.
func ParsePreface(b []byte) error {
	if len(b) != PrefaceSize || string(b[:len(Magic)]) != Magic {
		return SessionError(CodeVersion, "the peer did not start with the sluice preface (got %q); is it a sluice endpoint, and does TLS match on both sides?", b)
	}
	if v := binary.BigEndian.Uint16(b[len(Magic):]); v != Version {
		return SessionError(CodeVersion, "the peer speaks sluice protocol version %d, this build speaks version %d; upgrade the older side", v, Version)
	}
	return nil
}
