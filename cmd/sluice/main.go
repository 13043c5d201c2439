// Command sluice is the sluice reverse tunnel: the edge server, the agent and
// an all-in-one development mode, in one binary. Run `sluice help` for usage.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/buildinfo"
	"github.com/sluicehq/sluice/internal/coalesce"
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

// usageText is the top-level help: usage then the exit codes.
func usageText() string { return usage + "\nExit codes:\n" + exitCodesText() }

func main() {
	// Log lines (one per request on an HTTP agent) reach stderr through one
	// writer that batches those arriving together: a system call per
	// request was a measurable share of the agent's CPU under load.
	stderr := coalesce.New(os.Stderr)
	code := run(os.Args[1:], os.Stdout, stderr)
	stderr.Close()
	os.Exit(code)
}

// run executes one command line and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText())
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
		printVersion(stdout)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText())
		return exitOK
	default:
		fmt.Fprintf(stderr, "sluice: unknown command %q\n\n%s", cmd, usageText())
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

// printVersion answers `sluice version`: the first line for people and
// scripts that read one line, then each detail on a line of its own.
func printVersion(w io.Writer) {
	bi := buildinfo.Get()
	fmt.Fprintf(w, "sluice %s\n", bi)
	fmt.Fprintf(w, "commit:           %s\n", bi.Revision)
	fmt.Fprintf(w, "modified:         %t\n", bi.Modified)
	fmt.Fprintf(w, "go:               %s %s/%s\n", bi.GoVersion, runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(w, "control protocol: v%d\n", control.Version)
}
