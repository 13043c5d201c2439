package mux

import (
	"sync/atomic"
	"time"
)

// counters are the session's figures for Stats.
type counters struct {
	bytesSent, bytesReceived   atomic.Uint64
	framesSent, framesReceived atomic.Uint64
	batches                    atomic.Uint64
	sinkBytes                  atomic.Uint64
}

// Stats is a snapshot of a session's counters, for metrics.
type Stats struct {
	Streams        int           // streams open now
	BytesSent      uint64        // DATA payload bytes written
	BytesReceived  uint64        // DATA payload bytes read from the peer
	FramesSent     uint64        // frames of every type written
	FramesReceived uint64        // frames of every type read
	Batches        uint64        // writev calls; FramesSent/Batches is the batching factor
	RTT            time.Duration // latest keepalive round trip
	RecvBuffered   int64         // bytes received and not yet read by the application
	RecvInFlight   int64         // session window in use: received and not yet credited back
	SendCredit     int64         // session credit the peer granted and this side has not used
	// SinkBytes is the DATA the session's reader wrote straight into the
	// socket of a waiting Stream.WriteTo, sparing it a wake-up.
	SinkBytes uint64
	// SessionWindow is the configured session receive window.
	SessionWindow int64
	// LargestStreamWindow is the largest receive window among the open
	// streams, as auto-tuning has set it (0 with no stream open).
	LargestStreamWindow int64
}

// Stats returns a snapshot of the session's counters. It visits every
// open stream for the window figure, so it costs O(streams): call it for
// metrics, not per message.
func (s *Session) Stats() Stats {
	out := Stats{
		Streams:        s.NumStreams(),
		BytesSent:      s.stats.bytesSent.Load(),
		BytesReceived:  s.stats.bytesReceived.Load(),
		FramesSent:     s.stats.framesSent.Load(),
		FramesReceived: s.stats.framesReceived.Load(),
		Batches:        s.stats.batches.Load(),
		RTT:            s.RTT(),
		RecvBuffered:   s.buffered.Load(),
		RecvInFlight:   s.recv.inFlight.Load(),
		SendCredit:     s.send.credit.Load(),
		SinkBytes:      s.stats.sinkBytes.Load(),
		SessionWindow:  int64(s.cfg.SessionWindow),
	}
	s.streams.Range(func(_, v any) bool {
		st := v.(*Stream)
		st.mu.Lock()
		out.LargestStreamWindow = max(out.LargestStreamWindow, st.inflow.window)
		st.mu.Unlock()
		return true
	})
	return out
}
