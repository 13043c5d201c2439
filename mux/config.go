package mux

import (
	"fmt"
	"time"

	"github.com/sluicehq/sluice/frame"
)

// Config tunes a Session. Start from DefaultConfig; the zero value is not valid.
type Config struct {
	// MaxConcurrentStreams caps the streams open at once on a session,
	// counting both directions. The peer's OPEN beyond it is refused with
	// RESET(REFUSED_STREAM); a local OpenStream beyond it fails with
	// ErrStreamRefused.
	MaxConcurrentStreams int
	// AcceptBacklog caps the streams opened by the peer and not yet taken
	// by AcceptStream; beyond it the peer's OPEN is refused.
	AcceptBacklog int
	// InitialStreamWindow is the receive window of a new stream. It must be
	// at least frame.InitialStreamWindow (the credit every peer may assume);
	// more is granted with a WINDOW_UPDATE when the stream opens.
	InitialStreamWindow uint32
	// MaxStreamWindow caps window auto-tuning: a stream whose reader keeps
	// up with the link doubles its window, up to this, each time it consumes
	// a window in less than two round trips.
	MaxStreamWindow uint32
	// SessionWindow bounds the bytes received and not yet read across all
	// streams of the session. It must be at least frame.InitialSessionWindow
	// and should be several times MaxStreamWindow so that one stalled
	// stream cannot starve the others.
	SessionWindow uint32
	// MaxFramePayload is the largest DATA payload this side sends. Smaller
	// frames interleave streams more finely; larger ones cost less per byte.
	MaxFramePayload int
	// MaxStreamQueue bounds the bytes one stream may have queued for the
	// writer; Write blocks beyond it.
	MaxStreamQueue int
	// KeepAliveInterval is how often a PING is sent to measure RTT and keep
	// idle middleboxes awake. Zero disables keepalive and dead-peer detection.
	KeepAliveInterval time.Duration
	// KeepAliveTimeout ends the session with ErrKeepAliveTimeout when
	// nothing at all has arrived from the peer for this long.
	KeepAliveTimeout time.Duration
	// WriteTimeout ends the session when one write to the connection stays
	// blocked this long. Zero means no limit.
	WriteTimeout time.Duration
}

// DefaultConfig returns the configuration sluice uses.
func DefaultConfig() Config {
	return Config{
		MaxConcurrentStreams: 65536,
		AcceptBacklog:        1024,
		InitialStreamWindow:  frame.InitialStreamWindow,
		MaxStreamWindow:      16 << 20,
		SessionWindow:        128 << 20,
		MaxFramePayload:      64 << 10,
		MaxStreamQueue:       512 << 10,
		KeepAliveInterval:    15 * time.Second,
		KeepAliveTimeout:     45 * time.Second,
		WriteTimeout:         30 * time.Second,
	}
}

// Validate reports the first setting that cannot work, and why.
func (c Config) Validate() error {
	switch {
	case c.MaxConcurrentStreams < 1:
		return fmt.Errorf("mux config: MaxConcurrentStreams is %d; it must be at least 1", c.MaxConcurrentStreams)
	case c.AcceptBacklog < 1:
		return fmt.Errorf("mux config: AcceptBacklog is %d; it must be at least 1", c.AcceptBacklog)
	case c.InitialStreamWindow < frame.InitialStreamWindow:
		return fmt.Errorf("mux config: InitialStreamWindow is %d; it must be at least %d, the credit the protocol lets every peer assume", c.InitialStreamWindow, frame.InitialStreamWindow)
	case c.MaxStreamWindow < c.InitialStreamWindow:
		return fmt.Errorf("mux config: MaxStreamWindow (%d) is below InitialStreamWindow (%d)", c.MaxStreamWindow, c.InitialStreamWindow)
	case c.MaxStreamWindow > frame.MaxWindow:
		return fmt.Errorf("mux config: MaxStreamWindow is %d; the protocol maximum is %d", c.MaxStreamWindow, frame.MaxWindow)
	case c.SessionWindow < frame.InitialSessionWindow:
		return fmt.Errorf("mux config: SessionWindow is %d; it must be at least %d, the credit the protocol lets every peer assume", c.SessionWindow, frame.InitialSessionWindow)
	case c.SessionWindow > frame.MaxWindow:
		return fmt.Errorf("mux config: SessionWindow is %d; the protocol maximum is %d", c.SessionWindow, frame.MaxWindow)
	case c.MaxFramePayload < 1024 || c.MaxFramePayload > frame.MaxDataPayload:
		return fmt.Errorf("mux config: MaxFramePayload is %d; it must be between 1024 and %d", c.MaxFramePayload, frame.MaxDataPayload)
	case c.MaxStreamQueue < c.MaxFramePayload:
		return fmt.Errorf("mux config: MaxStreamQueue (%d) is below MaxFramePayload (%d)", c.MaxStreamQueue, c.MaxFramePayload)
	case c.KeepAliveInterval < 0 || c.KeepAliveTimeout < 0 || c.WriteTimeout < 0:
		return fmt.Errorf("mux config: durations must not be negative")
	case c.KeepAliveInterval > 0 && c.KeepAliveTimeout <= c.KeepAliveInterval:
		return fmt.Errorf("mux config: KeepAliveTimeout (%s) must be longer than KeepAliveInterval (%s), or the session dies between two pings", c.KeepAliveTimeout, c.KeepAliveInterval)
	}
	return nil
}
