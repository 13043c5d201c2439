// Command sluice is the sluice reverse tunnel: the edge server, the agent and
// an all-in-one development mode, in one binary. Run `sluice help` for usage.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/sluicehq/sluice/control"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// Exit codes, documented in the README so scripts can react to them.
const (
	exitOK          = 0
	exitFailure     = 1 // anything else: see the message
	exitUsage       = 2 // bad flag, argument or config file
	exitAuth        = 3 // the edge rejected the token or speaks another protocol version
	exitUnreachable = 4 // the edge could not be reached, or its TLS identity could not be verified
	exitConflict    = 5 // the name, hostname or TCP/UDP port is held by another agent, was taken over, or a tunnel limit is reached
)

const usage = `sluice: a self-hosted reverse tunnel.

Usage:
  sluice dev PORT [--demo] [--name NAME] [--http ADDR]
      Run an edge and an agent in this process and print a URL such as
      http://NAME.localhost:8080 for localhost:PORT. Nothing else to install.
  sluice server --listen ADDR --http ADDR --domain DOMAIN --token TOKEN [--tls-cert F --tls-key F | --insecure]
      Run an edge that agents connect to.
  sluice http PORT|HOST:PORT --server ADDR --token TOKEN [--name NAME] [--insecure]
      Expose a local HTTP service as http://NAME.DOMAIN.
  sluice tcp HOST:PORT --server ADDR --token TOKEN [--remote-port N] [--proxy-protocol v1|v2] [--insecure]
      Expose a local TCP service on a public port of the edge.
  sluice udp HOST:PORT --server ADDR --token TOKEN [--remote-port N] [--insecure]
      Expose a local UDP service on a public UDP port of the edge.
  sluice start -c sluice.yml
      Run every tunnel of a config file (re-read on SIGHUP and when it changes).
  sluice version

Every flag can also come from an environment variable SLUICE_<FLAG> (e.g.
SLUICE_SERVER, SLUICE_TOKEN, SLUICE_REMOTE_PORT) or a YAML config file given
with -c (keys spelled like the flags, with _ for -). A flag beats the
environment, which beats the file.

Run "sluice COMMAND -h" for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	ctx, stop := shutdownContext(stderr)
	defer stop()
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "server":
		err = runServer(ctx, rest, stdout, stderr)
	case "http":
		err = runTunnel(ctx, control.KindHTTP, rest, stdout, stderr)
	case "tcp":
		err = runTunnel(ctx, control.KindTCP, rest, stdout, stderr)
	case "udp":
		err = runTunnel(ctx, control.KindUDP, rest, stdout, stderr)
	case "start":
		err = runStart(ctx, rest, stdout, stderr)
	case "dev":
		err = runDev(ctx, rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "sluice %s (control protocol v%d)\n", version, control.Version)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "sluice: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	if !errors.Is(err, errHelpShown) {
		fmt.Fprintf(stderr, "sluice: %v\n", explain(err))
	}
	return code
}
