// Package cfgerr is the one configuration error of sluice's libraries: it
// names the package, the field that is wrong, and why. server and agent export
// it under their own names (server.ConfigError, agent.ConfigError), so a
// caller matches it with errors.As and maps Field to its own vocabulary (the
// command line maps it to a flag).
package cfgerr

import "fmt"

// Error says which field of a configuration is wrong and what to do.
type Error struct {
	// Pkg is the package whose Config it is ("server", "agent").
	Pkg string
	// Field is the Go field's path, e.g. "Listen" or "Tunnels[1].Local".
	Field string
	// Reason says what is wrong and what a valid value looks like.
	Reason string
	// Err is the underlying cause, when there is one (a file that would not
	// load, a directory that could not be made).
	Err error
}

func (e *Error) Error() string {
	return e.Pkg + ": " + e.Field + ": " + e.Message()
}

// Message is the error without the package and field: what the command line
// shows after the flag it maps Field to.
func (e *Error) Message() string {
	switch {
	case e.Reason == "" && e.Err != nil:
		return e.Err.Error()
	case e.Err != nil:
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

func (e *Error) Unwrap() error { return e.Err }

// New builds an *Error with a formatted reason.
func New(pkg, field, format string, args ...any) *Error {
	return &Error{Pkg: pkg, Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Wrap builds an *Error whose reason is its cause.
func Wrap(pkg, field string, err error) *Error {
	return &Error{Pkg: pkg, Field: field, Err: err}
}
