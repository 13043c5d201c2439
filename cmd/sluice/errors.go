package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/cfgerr"
)

// usageError marks a mistake on the command line or in a config file.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// errHelpShown ends a command after -h printed its flags.
var errHelpShown = errors.New("help shown")

func exitCode(err error) int {
	var cfe *cfgerr.Error
	if errors.As(err, &cfe) {
		return exitUsage
	}
	var (
		ue  usageError
		ce  *control.Error
		unr *agent.UnreachableError
		tle *agent.TLSError
		wp  *agent.WrongPeerError
	)
	switch {
	case errors.Is(err, errHelpShown):
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ce):
		switch ce.Code {
		case control.CodeUnauthorized, control.CodeVersion:
			return exitAuth
		case control.CodeNameTaken, control.CodePortTaken, control.CodeTakenOver, control.CodeLimit:
			return exitConflict
		case control.CodeRevoked, control.CodeForbidden:
			return exitAuth
		case control.CodeBadRequest:
			return exitUsage
		}
		return exitFailure
	case errors.As(err, &unr), errors.As(err, &tle), errors.As(err, &wp):
		return exitUnreachable
	}
	return exitFailure
}

// flagOf names, for each library Config field the command line sets, the flag
// (and environment variable) a user changes to fix it.
var flagOf = map[string]string{
	"server.Listen":              "--listen",
	"server.Tokens":              "--token (or SLUICE_TOKEN, or token: in the config file)",
	"server.Domain":              "--domain",
	"server.HTTP":                "--http",
	"server.TCPPortMin":          "--tcp-ports",
	"server.TCPPortMax":          "--tcp-ports",
	"server.PublicHTTPPort":      "--public-http-port",
	"server.UDPPortMin":          "--udp-ports",
	"server.AcceptProxyProtocol": "--accept-proxy-protocol",
	"server.HTTPS":               "--https",
	"server.HTTPSCertFile":       "--https-cert",
	"server.HTTPSKeyFile":        "--https-key",
	"server.ACMEDirectory":       "--acme-ca",
	"server.HTTPPlain":           "--http-plain",
	"server.StateDir":            "--state-dir",
	"server.TokenRules":          "--tokens-file",
	"server.Policy":              "--policy",
	"server.PublicHTTPSPort":     "--https",
	"server.Admin":               "--admin",
	"server.AdminToken":          "--admin-token",
	"server.FleetListen":         "--fleet-listen",
	"server.FleetJoin":           "--fleet-join",
	"server.FleetSecret":         "--fleet-secret (or SLUICE_FLEET_SECRET)",
	"server.FleetReplicas":       "--fleet-join",
	"server.NATS":                "--nats",
	"agent.Server":               "--server (or SLUICE_SERVER)",
	"agent.Token":                "--token (or SLUICE_TOKEN)",
	"agent.Sessions":             "--sessions",
}

// explain rewrites a library's error in the command line's words: a config
// error names the flag to change, and an error from the edge or the network
// ends with what to pass to fix it.
func explain(err error) error {
	var cfe *cfgerr.Error
	if errors.As(err, &cfe) {
		field := cfe.Field
		if i := strings.Index(field, "]."); i >= 0 && strings.HasPrefix(field, "Tunnels[") {
			field = field[i+2:] // a tunnel's field: the positional argument or a tunnel flag
			switch field {
			case "Local":
				return usageError{errors.New(cfe.Message())}
			case "RemotePort":
				return usageError{fmt.Errorf("--remote-port: %s", cfe.Message())}
			case "ProxyProtocol":
				return usageError{fmt.Errorf("--proxy-protocol: %s", cfe.Message())}
			case "Hostname":
				return usageError{fmt.Errorf("--name and --hostname (name: and hostname: in a config file): %s", cfe.Message())}
			case "Policy":
				return usageError{fmt.Errorf("policy: %s", cfe.Message())}
			}
		}
		if cfe.Pkg == "agent" && strings.HasPrefix(field, "Servers[") {
			field = "Server" // the second and later --server addresses
		}
		if f, ok := flagOf[cfe.Pkg+"."+field]; ok {
			return usageError{fmt.Errorf("%s: %s", f, cfe.Message())}
		}
		return usageError{err}
	}
	if hint := advice(err); hint != "" {
		return fmt.Errorf("%w: %s", err, hint)
	}
	return err
}

// advice says which flags fix a refusal by the edge or a failed connection.
func advice(err error) string {
	var (
		ce  *control.Error
		unr *agent.UnreachableError
		tle *agent.TLSError
		wp  *agent.WrongPeerError
	)
	switch {
	case errors.As(err, &ce):
		switch ce.Code {
		case control.CodeUnauthorized:
			return "pass the edge's token with --token or SLUICE_TOKEN"
		case control.CodeNameTaken:
			return "pick another --name or --hostname; to replace a stuck agent of your own add --takeover; to share the name run every agent with --pool"
		case control.CodePortTaken:
			return "pick another --remote-port, or omit it to let the edge choose; to replace a stuck agent of your own add --takeover; to share the port run every agent with --pool"
		case control.CodeTakenOver:
			return "another agent of yours took this tunnel over (--takeover); this one stops"
		case control.CodeRevoked, control.CodeForbidden:
			return "ask the edge's operator for a token that allows it (the edge's --tokens-file)"
		}
	case errors.As(err, &wp):
		return wrongPeerHint(wp)
	case errors.As(err, &unr):
		return "check --server / SLUICE_SERVER, and that --insecure is on both sides or neither"
	case errors.As(err, &tle):
		return "pass the edge's CA with --ca or its pin with --pin, or use --insecure on both sides for plain TCP"
	}
	return ""
}

// wrongPeerHint says which flag to fix when the edge's address answered as
// something else.
func wrongPeerHint(wp *agent.WrongPeerError) string {
	switch wp.Kind {
	case agent.PeerHTTP:
		return "is this the edge's --http port? agents connect to the edge's --listen address (port 7835 by default): fix --server"
	case agent.PeerTLS:
		return "the edge uses TLS: drop --insecure (and pass --pin or --ca if its certificate is not publicly trusted)"
	case agent.PeerPlainSluice:
		return "the edge runs with --insecure: pass --insecure here too, or give the edge a certificate"
	}
	return "--server must be the edge's --listen address: fix it"
}
