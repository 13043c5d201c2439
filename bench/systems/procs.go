package systems

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/sluicehq/sluice/bench/proc"
)

// lookBin finds a binary from an environment variable or PATH; "" if absent.
func lookBin(envVar, name string) string {
	if v := os.Getenv(envVar); v != "" {
		if _, err := os.Stat(v); err == nil {
			return v
		}
		return ""
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return ""
	}
	return p
}

// freePorts asks the kernel for n distinct unused loopback ports. Another
// process could take one before the tunnel binds it; on loopback in a
// benchmark run that race is rare, and a failed start is reported with the
// tunnel's log.
func freePorts(n int) ([]int, error) {
	// Hold all listeners until every port is chosen so they differ.
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free loopback port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitListening polls until something accepts TCP on addr: an agent started
// before its server would otherwise fail its first login on some tunnels.
func waitListening(ctx context.Context, addr string, procs []*proc.Proc) error {
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		for _, p := range procs {
			if done, werr := p.Exited(); done {
				return fmt.Errorf("%s exited before listening on %s (%v); last log lines:\n%s", p.Name, addr, werr, p.LogTail(8))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nothing listening on %s: %w", addr, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func firstLine(bin string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}
