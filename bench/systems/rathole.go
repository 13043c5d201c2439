package systems

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/proc"
)

// ratholeSystem runs rathole 0.5.0's server and client (1:1 TCP).
type ratholeSystem struct{ bin string }

func (r *ratholeSystem) Name() string      { return plan.Rathole }
func (r *ratholeSystem) HTTPRouting() bool { return false }
func (r *ratholeSystem) Available() error {
	if r.bin == "" {
		return errors.New("rathole not found (set RATHOLE_BIN or put it on PATH); install it with `cargo install rathole --version 0.5.0` or use the rapiz1/rathole:v0.5.0 image; skipping rathole")
	}
	return nil
}
func (r *ratholeSystem) Version() string { return firstLine(r.bin, "--version") }

func (r *ratholeSystem) Start(ctx context.Context, env Env, opts StartOptions) (*Instance, error) {
	// The server lists every service it will carry: the first agent's and
	// one for each further agent (opts.Agents).
	ports, err := freePorts(2 + opts.Agents)
	if err != nil {
		return nil, err
	}
	ctrl := fmt.Sprintf("127.0.0.1:%d", ports[0])
	pub := fmt.Sprintf("127.0.0.1:%d", ports[1])
	sp := filepath.Join(env.Dir, "rathole-server.toml")
	cp := filepath.Join(env.Dir, "rathole-client.toml")
	serverToml := fmt.Sprintf("[server]\nbind_addr = %q\n[server.services.bench]\ntoken = \"bench\"\nbind_addr = %q\n", ctrl, pub)
	for i := 1; i <= opts.Agents; i++ {
		serverToml += fmt.Sprintf("[server.services.agent%d]\ntoken = \"bench\"\nbind_addr = \"127.0.0.1:%d\"\n", i, ports[1+i])
	}
	if err := os.WriteFile(sp, []byte(serverToml), 0o644); err != nil {
		return nil, fmt.Errorf("write rathole config: %w", err)
	}
	envv := []string{"RUST_LOG=error"}
	in := &Instance{System: plan.Rathole, Addr: pub, Started: time.Now()}
	edge, err := in.startEdge(ctx, env, opts, "rathole server", r.bin, []string{"-s", sp}, envv, ctrl)
	if err != nil {
		return nil, err
	}
	clientToml := fmt.Sprintf("[client]\nremote_addr = %q\n[client.services.bench]\ntoken = \"bench\"\nlocal_addr = %q\n", edge, env.TargetTCP)
	if err := os.WriteFile(cp, []byte(clientToml), 0o644); err != nil {
		in.Stop()
		return nil, fmt.Errorf("write rathole config: %w", err)
	}
	cl, err := proc.Start("rathole client", false, env.Dir, r.bin, []string{"-c", cp}, envv)
	if err != nil {
		in.Stop()
		return nil, err
	}
	in.Procs = append(in.Procs, cl)
	in.addAgent = func(_ context.Context, i int) (string, error) {
		if i > opts.Agents {
			return "", fmt.Errorf("the server was configured for %d further agents (StartOptions.Agents)", opts.Agents)
		}
		cfg := fmt.Sprintf("[client]\nremote_addr = %q\n[client.services.agent%d]\ntoken = \"bench\"\nlocal_addr = %q\n", edge, i, env.TargetTCP)
		path := filepath.Join(env.Dir, fmt.Sprintf("rathole-agent%d.toml", i))
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			return "", fmt.Errorf("write rathole config: %w", err)
		}
		p, err := proc.Start(fmt.Sprintf("rathole client %d", i), false, env.Dir, r.bin, []string{"-c", path}, envv)
		if err != nil {
			return "", err
		}
		in.Procs = append(in.Procs, p)
		return fmt.Sprintf("127.0.0.1:%d", ports[1+i]), nil
	}
	return in, nil
}
