package target

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sluicehq/sluice/bench/proc"
)

// Role is the proc.ChildEnv value that turns the harness into the target.
const Role = "target"

// Child is the target service running as a child process.
type Child struct {
	*proc.Proc
	TCPAddr, HTTPAddr string
}

// StartChild starts the target service as a child of this process (its
// main must call RunChild for Role).
func StartChild(dir string) (*Child, error) {
	p, line, err := proc.StartChild("target", false, dir, Role, nil)
	if err != nil {
		return nil, err
	}
	t, h, err := parseReady(line)
	if err != nil {
		p.Stop()
		return nil, err
	}
	return &Child{Proc: p, TCPAddr: t, HTTPAddr: h}, nil
}

// RunChild serves until stdin closes (the parent died or stopped us); it
// is the target role of proc.StartChild.
func RunChild() {
	t, err := Start(envOr("SLUICE_BENCH_TCP", "127.0.0.1:0"), envOr("SLUICE_BENCH_HTTP", "127.0.0.1:0"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Printf("ready tcp=%s http=%s\n", t.TCPAddr(), t.HTTPAddr())
	io.Copy(io.Discard, os.Stdin)
	t.Close()
	os.Exit(0)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// parseReady reads the child's "ready tcp=... http=..." line.
func parseReady(line string) (tcpAddr, httpAddr string, err error) {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "tcp="); ok {
			tcpAddr = v
		}
		if v, ok := strings.CutPrefix(f, "http="); ok {
			httpAddr = v
		}
	}
	if tcpAddr == "" || httpAddr == "" {
		return "", "", fmt.Errorf("target printed %q, want \"ready tcp=ADDR http=ADDR\"", strings.TrimSpace(line))
	}
	return tcpAddr, httpAddr, nil
}
