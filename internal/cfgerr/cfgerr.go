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
}

func (e *Error) Error() string { return e.Pkg + ": " + e.Field + ": " + e.Reason }

// New builds an *Error with a formatted reason.
func New(pkg, field, format string, args ...any) *Error {
	return &Error{Pkg: pkg, Field: field, Reason: fmt.Sprintf(format, args...)}
}
