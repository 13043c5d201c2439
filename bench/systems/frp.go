package systems

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/proc"
	"github.com/sluicehq/sluice/bench/target"
)

// frpSystem runs frp 0.66.0's frps and frpc (yamux multiplexing, frp's
// default).
type frpSystem struct{ frps, frpc string }

func (f *frpSystem) Name() string      { return plan.FRP }
func (f *frpSystem) HTTPRouting() bool { return true }
func (f *frpSystem) Available() error {
	if f.frps == "" || f.frpc == "" {
		return errors.New("frps/frpc not found (set FRPS_BIN and FRPC_BIN or put them on PATH); download frp 0.66.0 from https://github.com/fatedier/frp/releases or use the snowdreamtech/frps:0.66.0 and snowdreamtech/frpc:0.66.0 images; skipping frp")
	}
	return nil
}
func (f *frpSystem) Version() string { return firstLine(f.frps, "--version") }

func (f *frpSystem) Start(ctx context.Context, env Env, opts StartOptions) (*Instance, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	_, tport, _ := net.SplitHostPort(env.TargetTCP)
	_, hport, _ := net.SplitHostPort(env.TargetHTTP)
	frps := fmt.Sprintf("bindAddr = \"127.0.0.1\"\nbindPort = %d\nauth.token = \"bench\"\nlog.level = \"error\"\n", ports[0])
	proxies := fmt.Sprintf("\n[[proxies]]\nname = \"bench\"\ntype = \"tcp\"\nlocalIP = \"127.0.0.1\"\nlocalPort = %s\nremotePort = %d\n", tport, ports[2])
	in := &Instance{System: plan.FRP, Addr: fmt.Sprintf("127.0.0.1:%d", ports[2]), Started: time.Now()}
	if opts.HTTP {
		frps += fmt.Sprintf("vhostHTTPPort = %d\n", ports[1])
		proxies += fmt.Sprintf("\n[[proxies]]\nname = \"bench-http\"\ntype = \"http\"\nlocalIP = \"127.0.0.1\"\nlocalPort = %s\ncustomDomains = [%q]\n", hport, target.HTTPHostName)
		in.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
		in.HTTPHost = target.HTTPHostName
	}
	sp := filepath.Join(env.Dir, "frps.toml")
	cp := filepath.Join(env.Dir, "frpc.toml")
	if err := os.WriteFile(sp, []byte(frps), 0o644); err != nil {
		return nil, fmt.Errorf("write frp config: %w", err)
	}
	edge, err := in.startEdge(ctx, env, opts, "frps", f.frps, []string{"-c", sp}, nil, fmt.Sprintf("127.0.0.1:%d", ports[0]))
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(edge)
	frpc := fmt.Sprintf("serverAddr = %q\nserverPort = %s\nauth.token = \"bench\"\nlog.level = \"error\"\n", host, port) + proxies
	if err := os.WriteFile(cp, []byte(frpc), 0o644); err != nil {
		in.Stop()
		return nil, fmt.Errorf("write frp config: %w", err)
	}
	cl, err := proc.Start("frpc", false, env.Dir, f.frpc, []string{"-c", cp}, nil)
	if err != nil {
		in.Stop()
		return nil, err
	}
	in.Procs = append(in.Procs, cl)
	in.addAgent = func(_ context.Context, i int) (string, error) {
		pub, err := freePorts(1)
		if err != nil {
			return "", err
		}
		cfg := fmt.Sprintf("serverAddr = %q\nserverPort = %s\nauth.token = \"bench\"\nlog.level = \"error\"\n\n[[proxies]]\nname = \"bench-agent%d\"\ntype = \"tcp\"\nlocalIP = \"127.0.0.1\"\nlocalPort = %s\nremotePort = %d\n", host, port, i, tport, pub[0])
		path := filepath.Join(env.Dir, fmt.Sprintf("frpc-agent%d.toml", i))
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			return "", fmt.Errorf("write frp config: %w", err)
		}
		p, err := proc.Start(fmt.Sprintf("frpc %d", i), false, env.Dir, f.frpc, []string{"-c", path}, nil)
		if err != nil {
			return "", err
		}
		in.Procs = append(in.Procs, p)
		return fmt.Sprintf("127.0.0.1:%d", pub[0]), nil
	}
	return in, nil
}
