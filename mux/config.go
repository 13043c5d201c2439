package mux

import (
	"fmt"
	"time"

	"github.com/sluicehq/sluice/frame"
	"github.com/sluicehq/sluice/internal/cfgerr"
)

// Config tunes a Session. Every field has a default: a zero field takes it,
// so the zero Config, or one with only some fields set, is valid. A value
// set out of range is refused with a *ConfigError naming the field.
type Config struct {
	// MaxConcurrentStreams caps the streams open at once on a session,
	// counting both directions. The peer's OPEN beyond it is refused with
	// RESET(REFUSED_STREAM); a local OpenStream beyond it fails with
	// ErrStreamRefused. Default 65536.
	MaxConcurrentStreams int
	// AcceptBacklog caps the streams opened by the peer and not yet taken
	// by AcceptStream; beyond it the peer's OPEN is refused. Default 1024.
	AcceptBacklog int
	// InitialStreamWindow is the receive window of a new stream, and the
	// smallest that auto-tuning shrinks it to. It must be at least
	// frame.InitialStreamWindow (256 KiB, the credit every peer may
	// assume, and the default); more is announced to a version 2 peer with
	// SETTINGS at session start, and granted with a WINDOW_UPDATE when a
	// stream opens before the peer has acknowledged it (or with a version
	// 1 peer). On a path whose round trip is 10 ms or more, new streams
	// start with the window that path needs if that is larger
	// (docs/PROTOCOL.md, section 5). It is a trade-off on loopback and
	// LANs, where windows do not auto-tune: 1 MiB halves the context
	// switches per MiB of a bulk stream (fewer WINDOW_UPDATEs to wait
	// for), but the bulk streams' larger windows then queue in front of
	// small messages, and a 64-byte round trip under two bulk streams took
	// twice as long (docs/DATAPATH.md has the figures).
	InitialStreamWindow uint32
	// MaxStreamWindow caps window auto-tuning: a stream whose reader keeps
	// up with the link grows its window, up to this, each time it consumes
	// half a window in less than two round trips: to twice the
	// bandwidth-delay product its arrivals show, or double if that is more.
	// Default 32 MiB (or InitialStreamWindow, if that is larger).
	MaxStreamWindow uint32
	// SessionWindow bounds the bytes received and not yet read across all
	// streams of the session. It must be at least frame.InitialSessionWindow
	// and should be several times MaxStreamWindow so that one stalled
	// stream cannot starve the others. Default 128 MiB.
	SessionWindow uint32
	// MaxFramePayload is the largest DATA payload this side sends. Smaller
	// frames interleave streams more finely; larger ones cost less per byte.
	// Default 64 KiB.
	MaxFramePayload int
	// MaxStreamQueue bounds the bytes one stream may have queued for the
	// writer; Write blocks beyond it. Default 512 KiB (or MaxFramePayload,
	// if that is larger).
	MaxStreamQueue int
	// KeepAliveInterval is how often a PING is sent to measure RTT and keep
	// idle middleboxes awake. Default 10s; negative disables keepalive and
	// dead-peer detection.
	KeepAliveInterval time.Duration
	// KeepAliveTimeout ends the session with ErrKeepAliveTimeout when
	// nothing at all has arrived from the peer for this long. Default 30s
	// (or three intervals, if that is longer). docs/DATAPATH.md says why.
	KeepAliveTimeout time.Duration
	// WriteTimeout ends the session when one write to the connection stays
	// blocked this long. Default 30s; negative means no limit.
	WriteTimeout time.Duration
}

// The defaults, field by field.
const (
	DefaultMaxConcurrentStreams = 65536
	DefaultInitialStreamWindow  = frame.InitialStreamWindow
	DefaultAcceptBacklog        = 1024
	DefaultMaxStreamWindow      = 32 << 20
	DefaultSessionWindow        = 128 << 20
	DefaultMaxFramePayload      = 64 << 10
	DefaultMaxStreamQueue       = 512 << 10
	DefaultKeepAliveInterval    = 10 * time.Second
	DefaultKeepAliveTimeout     = 30 * time.Second
	DefaultWriteTimeout         = 30 * time.Second
)

// DefaultConfig returns the configuration sluice uses, every field filled
// in: the same as the zero Config.
func DefaultConfig() Config { return Config{}.withDefaults() }

// ConfigError says which Config field cannot work, and why (Pkg is
// "mux"). Match it with errors.As; it is the same type as
// server.ConfigError and agent.ConfigError.
type ConfigError = cfgerr.Error

// withDefaults fills every zero field with its default. Defaults that
// depend on another field follow what the caller set there, so setting one
// field alone never makes the Config invalid.
func (c Config) withDefaults() Config {
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if c.AcceptBacklog == 0 {
		c.AcceptBacklog = DefaultAcceptBacklog
	}
	if c.InitialStreamWindow == 0 {
		c.InitialStreamWindow = DefaultInitialStreamWindow
	}
	if c.MaxStreamWindow == 0 {
		c.MaxStreamWindow = max(DefaultMaxStreamWindow, c.InitialStreamWindow)
	}
	if c.SessionWindow == 0 {
		c.SessionWindow = DefaultSessionWindow
	}
	if c.MaxFramePayload == 0 {
		c.MaxFramePayload = DefaultMaxFramePayload
	}
	if c.MaxStreamQueue == 0 {
		c.MaxStreamQueue = max(DefaultMaxStreamQueue, c.MaxFramePayload)
	}
	if c.KeepAliveInterval == 0 {
		c.KeepAliveInterval = DefaultKeepAliveInterval
	}
	if c.KeepAliveTimeout == 0 {
		c.KeepAliveTimeout = max(DefaultKeepAliveTimeout, 3*c.KeepAliveInterval)
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	return c
}

// keepAlive reports whether keepalive and dead-peer detection run.
func (c Config) keepAlive() bool { return c.KeepAliveInterval > 0 }

// Validate reports the first setting that cannot work, as a *ConfigError,
// after filling in the defaults of the fields left zero.
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(field string, value any, format string, args ...any) error {
		return cfgerr.New("mux", field, "%v is out of range: %s", value, fmt.Sprintf(format, args...))
	}
	switch {
	case c.MaxConcurrentStreams < 1:
		return bad("MaxConcurrentStreams", c.MaxConcurrentStreams, "it must be at least 1")
	case c.AcceptBacklog < 1:
		return bad("AcceptBacklog", c.AcceptBacklog, "it must be at least 1")
	case c.InitialStreamWindow < frame.InitialStreamWindow:
		return bad("InitialStreamWindow", c.InitialStreamWindow, "it must be at least %d, the credit the protocol lets every peer assume", frame.InitialStreamWindow)
	case c.MaxStreamWindow < c.InitialStreamWindow:
		return bad("MaxStreamWindow", c.MaxStreamWindow, "it must not be below InitialStreamWindow (%d)", c.InitialStreamWindow)
	case c.MaxStreamWindow > frame.MaxWindow:
		return bad("MaxStreamWindow", c.MaxStreamWindow, "the protocol maximum is %d", frame.MaxWindow)
	case c.SessionWindow < frame.InitialSessionWindow:
		return bad("SessionWindow", c.SessionWindow, "it must be at least %d, the credit the protocol lets every peer assume", frame.InitialSessionWindow)
	case c.SessionWindow > frame.MaxWindow:
		return bad("SessionWindow", c.SessionWindow, "the protocol maximum is %d", frame.MaxWindow)
	case c.MaxFramePayload < 1024 || c.MaxFramePayload > frame.MaxDataPayload:
		return bad("MaxFramePayload", c.MaxFramePayload, "it must be between 1024 and %d", frame.MaxDataPayload)
	case c.MaxStreamQueue < c.MaxFramePayload:
		return bad("MaxStreamQueue", c.MaxStreamQueue, "it must not be below MaxFramePayload (%d)", c.MaxFramePayload)
	case c.keepAlive() && c.KeepAliveTimeout <= c.KeepAliveInterval:
		return bad("KeepAliveTimeout", c.KeepAliveTimeout, "it must be longer than KeepAliveInterval (%s), or the session dies between two pings", c.KeepAliveInterval)
	}
	return nil
}
