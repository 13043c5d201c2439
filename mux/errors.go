package mux

import (
	"errors"
	"fmt"
	"os"

	"github.com/sluicehq/sluice/frame"
)

// Errors a caller can match with errors.Is.
var (
	// ErrSessionClosed: the session is over (closed locally, by the peer, or
	// by a failure; Session.Err says which).
	ErrSessionClosed = errors.New("mux: session closed")
	// ErrStreamClosed: the stream was closed or reset on this side.
	ErrStreamClosed = errors.New("mux: stream closed")
	// ErrStreamReset: the peer reset the stream.
	ErrStreamReset = errors.New("mux: stream reset by peer")
	// ErrStreamRefused: the stream was refused before the peer processed
	// it: its stream limit, accept backlog or a GOAWAY.
	ErrStreamRefused = errors.New("mux: stream refused by peer (stream limit, accept backlog or shutting down); retry later or raise MaxConcurrentStreams/AcceptBacklog")
	// ErrGoAway: the peer is shutting down and accepts no new streams.
	ErrGoAway = errors.New("mux: peer sent GOAWAY; no new streams can be opened on this session")
	// ErrKeepAliveTimeout: nothing arrived from the peer within KeepAliveTimeout.
	ErrKeepAliveTimeout = errors.New("mux: peer stopped answering (keepalive timeout); the connection is dead")
	// ErrWriteClosed: Write after CloseWrite.
	ErrWriteClosed = errors.New("mux: write after CloseWrite")
)

// ResetError is returned by a stream's calls after the peer reset it.
type ResetError struct{ Code frame.Code }

func (e *ResetError) Error() string {
	if e.Code == frame.CodeRefusedStream {
		return ErrStreamRefused.Error()
	}
	return fmt.Sprintf("mux: stream reset by peer (%s)", e.Code)
}

// Is makes errors.Is(err, ErrStreamReset) true for every reset and
// errors.Is(err, ErrStreamRefused) true for refusals.
func (e *ResetError) Is(target error) bool {
	return target == ErrStreamReset || (target == ErrStreamRefused && e.Code == frame.CodeRefusedStream)
}

// RemoteError is the session's error after the peer sent GOAWAY with an
// error code, or closed because of a protocol violation it reported.
type RemoteError struct{ Code frame.Code }

func (e *RemoteError) Error() string {
	return fmt.Sprintf("mux: peer ended the session (%s)", e.Code)
}

// timeoutError is returned when a deadline passes. It satisfies net.Error
// with Timeout() == true and matches os.ErrDeadlineExceeded, like net.Conn.
type timeoutError struct{}

func (timeoutError) Error() string        { return "mux: i/o timeout" }
func (timeoutError) Timeout() bool        { return true }
func (timeoutError) Temporary() bool      { return true }
func (timeoutError) Is(target error) bool { return target == os.ErrDeadlineExceeded }

// ErrTimeout is returned by stream calls whose deadline passed.
var ErrTimeout error = timeoutError{}

// sessionEnded wraps the cause of a session's end so that callers can match
// both ErrSessionClosed and the cause.
type sessionEnded struct{ cause error }

func (e *sessionEnded) Error() string {
	if e.cause == nil || e.cause == ErrSessionClosed {
		return ErrSessionClosed.Error()
	}
	return ErrSessionClosed.Error() + ": " + e.cause.Error()
}
func (e *sessionEnded) Unwrap() []error { return []error{ErrSessionClosed, e.cause} }

// readError is why a session ended when reading from its connection failed
// on this side, for a reason other than the peer closing it.
type readError struct{ err error }

func (e *readError) Error() string {
	return "mux: reading from the connection failed: " + e.err.Error()
}
func (e *readError) Unwrap() error { return e.err }
