package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// System names.
const (
	SystemDirect  = "direct"
	SystemSluice  = "sluice"
	SystemRathole = "rathole"
	SystemFRP     = "frp"
	SystemRelay   = "relay"
)

// Env is what every system is started against.
type Env struct {
	Dir        string   // scratch directory for configs and logs
	TargetTCP  string   // the target's TCP address
	TargetHTTP string   // the target's HTTP address
	ExtraEnv   []string // added to the tunnel processes' environment
}

// StartOptions chooses what an instance carries.
type StartOptions struct {
	HTTP bool // also route HTTP by Host to the target's HTTP port
	// EdgeBase records the edge's memory before the agent starts (it
	// waits a moment, so startup is not timed on such instances).
	EdgeBase bool
}

// Instance is one running copy of a system.
type Instance struct {
	System   string
	Addr     string // public TCP address that forwards to the target
	HTTPAddr string // where HTTP clients connect; "" when not routed
	HTTPHost string // Host header that selects the target
	Procs    []*Proc
	Started  time.Time // when the first process was started
	// EdgeBaseKB is the edge's RSS once it listens but before any agent
	// connected: the fixed cost of an edge, before tunnels and connections.
	EdgeBaseKB int64
	// External instances were started by someone else (containers): they
	// are not stopped, have no startup time, and, when Cgroups is set, their
	// memory and CPU come from those cgroups.
	External bool
	Cgroups  Cgroups
}

// markEdgeBase records EdgeBaseKB; call it when the edge listens and no
// agent has been started yet.
func (in *Instance) markEdgeBase() {
	// A moment for the runtime to finish its start-up allocations.
	time.Sleep(50 * time.Millisecond)
	if kb, err := in.RSSKB(true); err == nil {
		in.EdgeBaseKB = kb
	}
}

// Stop ends every process of the instance.
func (in *Instance) Stop() {
	for i := len(in.Procs) - 1; i >= 0; i-- {
		in.Procs[i].Stop()
	}
}

// Alive returns an error naming the first process that has exited, with
// the end of its log, so a crashed tunnel is reported as such and not as a
// slow one.
func (in *Instance) Alive() error {
	for _, p := range in.Procs {
		if done, err := p.Exited(); done {
			return fmt.Errorf("%s exited (%v); last log lines:\n%s", p.Name, err, p.LogTail(8))
		}
	}
	return nil
}

// RSSKB sums the resident memory of the instance's processes (edge only
// when edgeOnly).
func (in *Instance) RSSKB(edgeOnly bool) (int64, error) {
	if in.Cgroups.Set() {
		kb, err := in.Cgroups.MemKB(edgeOnly)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", in.System, err)
		}
		return kb, nil
	}
	var sum int64
	for _, p := range in.Procs {
		if edgeOnly && !p.Edge {
			continue
		}
		kb, err := RSSKB(p.PID())
		if err != nil {
			return 0, err
		}
		sum += kb
	}
	return sum, nil
}

// CtxSwitches sums the context switches of the instance's processes so
// far; an error for instances without processes of their own.
func (in *Instance) CtxSwitches() (int64, error) {
	if len(in.Procs) == 0 {
		return 0, fmt.Errorf("%s has no processes of its own", in.System)
	}
	var sum int64
	for _, p := range in.Procs {
		n, err := CtxSwitches(p.PID())
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// CPU sums the CPU time used so far by the instance's processes.
func (in *Instance) CPU(edgeOnly bool) (time.Duration, error) {
	if in.Cgroups.Set() {
		d, err := in.Cgroups.CPUTime(edgeOnly)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", in.System, err)
		}
		return d, nil
	}
	var sum time.Duration
	for _, p := range in.Procs {
		if edgeOnly && !p.Edge {
			continue
		}
		d, err := CPUTime(p.PID())
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}

// System is something the harness can measure.
type System interface {
	Name() string
	// Available returns nil when the system can run here, otherwise an
	// error whose text tells a user how to install it.
	Available() error
	Version() string
	// Start launches the system's processes. It returns once they are
	// started; the runner decides when the tunnel is live by a round trip.
	Start(ctx context.Context, env Env, opts StartOptions) (*Instance, error)
	// HTTPRouting reports whether the system can route HTTP by Host.
	HTTPRouting() bool
}

// NewSystem returns the named system. sluiceBin is used only by sluice.
func NewSystem(name, sluiceBin string) (System, error) {
	switch name {
	case SystemDirect:
		return directSystem{}, nil
	case SystemSluice:
		return &sluiceSystem{bin: sluiceBin}, nil
	case SystemRathole:
		return &ratholeSystem{bin: lookBin("RATHOLE_BIN", "rathole")}, nil
	case SystemFRP:
		return &frpSystem{frps: lookBin("FRPS_BIN", "frps"), frpc: lookBin("FRPC_BIN", "frpc")}, nil
	case SystemRelay:
		return relaySystem{}, nil
	}
	return nil, fmt.Errorf("unknown system %q (known: direct, sluice, rathole, frp, relay)", name)
}

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

// freePort asks the kernel for an unused loopback port. Another process
// could take it before the tunnel binds it; on loopback in a benchmark run
// that race is rare, and a failed start is reported with the tunnel's log.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

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
func waitListening(ctx context.Context, addr string, procs []*Proc) error {
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

// NewSystemDirect returns the no-tunnel baseline.
func NewSystemDirect() System { return directSystem{} }

// directSystem is no tunnel at all: the physical limit of this machine.
type directSystem struct{}

func (directSystem) Name() string      { return SystemDirect }
func (directSystem) Available() error  { return nil }
func (directSystem) Version() string   { return "loopback TCP" }
func (directSystem) HTTPRouting() bool { return true }
func (directSystem) Start(_ context.Context, env Env, _ StartOptions) (*Instance, error) {
	return &Instance{System: SystemDirect, Addr: env.TargetTCP, HTTPAddr: env.TargetHTTP, HTTPHost: HTTPHostName, Started: time.Now()}, nil
}

// sluiceSystem runs `sluice server` and one `sluice tcp` agent (plus a
// `sluice http` agent when HTTP is wanted), plain transport, logging errors
// only (as the peers are configured: rathole RUST_LOG=error, frp
// log.level=error), so no system pays for a log line per request; for the
// same reason the HTTP agent runs with --log-requests=false (its default
// parses and logs every request, which neither peer does at log level error).
type sluiceSystem struct {
	bin    string
	binErr error // why there is no binary (e.g. the build failed)
}

// NewSluiceSystem returns the sluice system for a binary, or one that
// reports binErr as the reason it is unavailable.
func NewSluiceSystem(bin string, binErr error) System {
	return &sluiceSystem{bin: bin, binErr: binErr}
}

const sluiceToken = "bench"

func (s *sluiceSystem) Name() string      { return SystemSluice }
func (s *sluiceSystem) HTTPRouting() bool { return true }
func (s *sluiceSystem) Available() error {
	if s.binErr != nil {
		return s.binErr
	}
	if s.bin == "" {
		return errors.New("sluice binary not available: set SLUICE_BIN or run from the repository so the harness can `go build ./cmd/sluice`")
	}
	if _, err := os.Stat(s.bin); err != nil {
		return fmt.Errorf("sluice binary %s: %w (set SLUICE_BIN to a built sluice)", s.bin, err)
	}
	return nil
}
func (s *sluiceSystem) Version() string {
	if v := firstLine(s.bin, "version"); v != "" && !strings.Contains(strings.ToLower(v), "usage") && !strings.Contains(strings.ToLower(v), "unknown") {
		return v
	}
	return "built from this repository"
}

func (s *sluiceSystem) Start(ctx context.Context, env Env, opts StartOptions) (*Instance, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	ctrl := fmt.Sprintf("127.0.0.1:%d", ports[0])
	httpAddr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	pub := fmt.Sprintf("127.0.0.1:%d", ports[2])
	in := &Instance{System: SystemSluice, Addr: pub, Started: time.Now()}
	srv, err := startProc("sluice server", true, env.Dir, s.bin,
		[]string{"server", "--listen", ctrl, "--http", httpAddr, "--domain", "localhost", "--token", sluiceToken, "--insecure", "--log-level", "error"}, env.ExtraEnv)
	if err != nil {
		return nil, err
	}
	in.Procs = append(in.Procs, srv)
	if err := waitListening(ctx, ctrl, in.Procs); err != nil {
		in.Stop()
		return nil, fmt.Errorf("sluice server: %w", err)
	}
	if opts.EdgeBase {
		in.markEdgeBase()
	}
	ag, err := startProc("sluice tcp agent", false, env.Dir, s.bin,
		[]string{"tcp", env.TargetTCP, "--server", ctrl, "--token", sluiceToken, "--remote-port", fmt.Sprint(ports[2]), "--insecure", "--log-level", "error"}, env.ExtraEnv)
	if err != nil {
		in.Stop()
		return nil, err
	}
	in.Procs = append(in.Procs, ag)
	if opts.HTTP {
		_, tport, _ := net.SplitHostPort(env.TargetHTTP)
		hag, err := startProc("sluice http agent", false, env.Dir, s.bin,
			[]string{"http", tport, "--server", ctrl, "--token", sluiceToken, "--name", strings.TrimSuffix(HTTPHostName, ".localhost"), "--insecure", "--log-level", "error", "--log-requests=false"}, env.ExtraEnv)
		if err != nil {
			in.Stop()
			return nil, err
		}
		in.Procs = append(in.Procs, hag)
		in.HTTPAddr = httpAddr
		in.HTTPHost = HTTPHostName
	}
	return in, nil
}

// ratholeSystem runs rathole 0.5.0's server and client (1:1 TCP).
type ratholeSystem struct{ bin string }

func (r *ratholeSystem) Name() string      { return SystemRathole }
func (r *ratholeSystem) HTTPRouting() bool { return false }
func (r *ratholeSystem) Available() error {
	if r.bin == "" {
		return errors.New("rathole not found (set RATHOLE_BIN or put it on PATH); install it with `cargo install rathole --version 0.5.0` or use the rapiz1/rathole:v0.5.0 image; skipping rathole")
	}
	return nil
}
func (r *ratholeSystem) Version() string { return firstLine(r.bin, "--version") }

func (r *ratholeSystem) Start(ctx context.Context, env Env, opts StartOptions) (*Instance, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	ctrl := fmt.Sprintf("127.0.0.1:%d", ports[0])
	pub := fmt.Sprintf("127.0.0.1:%d", ports[1])
	serverToml := fmt.Sprintf("[server]\nbind_addr = %q\n[server.services.bench]\ntoken = \"bench\"\nbind_addr = %q\n", ctrl, pub)
	clientToml := fmt.Sprintf("[client]\nremote_addr = %q\n[client.services.bench]\ntoken = \"bench\"\nlocal_addr = %q\n", ctrl, env.TargetTCP)
	sp := filepath.Join(env.Dir, "rathole-server.toml")
	cp := filepath.Join(env.Dir, "rathole-client.toml")
	if err := os.WriteFile(sp, []byte(serverToml), 0o644); err != nil {
		return nil, fmt.Errorf("write rathole config: %w", err)
	}
	if err := os.WriteFile(cp, []byte(clientToml), 0o644); err != nil {
		return nil, fmt.Errorf("write rathole config: %w", err)
	}
	envv := append([]string{"RUST_LOG=error"}, env.ExtraEnv...)
	in := &Instance{System: SystemRathole, Addr: pub, Started: time.Now()}
	srv, err := startProc("rathole server", true, env.Dir, r.bin, []string{"-s", sp}, envv)
	if err != nil {
		return nil, err
	}
	in.Procs = append(in.Procs, srv)
	if err := waitListening(ctx, ctrl, in.Procs); err != nil {
		in.Stop()
		return nil, fmt.Errorf("rathole server: %w", err)
	}
	if opts.EdgeBase {
		in.markEdgeBase()
	}
	cl, err := startProc("rathole client", false, env.Dir, r.bin, []string{"-c", cp}, envv)
	if err != nil {
		in.Stop()
		return nil, err
	}
	in.Procs = append(in.Procs, cl)
	return in, nil
}

// frpSystem runs frp 0.66.0's frps and frpc (yamux multiplexing, frp's
// default).
type frpSystem struct{ frps, frpc string }

func (f *frpSystem) Name() string      { return SystemFRP }
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
	frpc := fmt.Sprintf("serverAddr = \"127.0.0.1\"\nserverPort = %d\nauth.token = \"bench\"\nlog.level = \"error\"\n\n[[proxies]]\nname = \"bench\"\ntype = \"tcp\"\nlocalIP = \"127.0.0.1\"\nlocalPort = %s\nremotePort = %d\n", ports[0], tport, ports[2])
	in := &Instance{System: SystemFRP, Addr: fmt.Sprintf("127.0.0.1:%d", ports[2]), Started: time.Now()}
	if opts.HTTP {
		frps += fmt.Sprintf("vhostHTTPPort = %d\n", ports[1])
		frpc += fmt.Sprintf("\n[[proxies]]\nname = \"bench-http\"\ntype = \"http\"\nlocalIP = \"127.0.0.1\"\nlocalPort = %s\ncustomDomains = [%q]\n", hport, HTTPHostName)
		in.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
		in.HTTPHost = HTTPHostName
	}
	sp := filepath.Join(env.Dir, "frps.toml")
	cp := filepath.Join(env.Dir, "frpc.toml")
	if err := os.WriteFile(sp, []byte(frps), 0o644); err != nil {
		return nil, fmt.Errorf("write frp config: %w", err)
	}
	if err := os.WriteFile(cp, []byte(frpc), 0o644); err != nil {
		return nil, fmt.Errorf("write frp config: %w", err)
	}
	srv, err := startProc("frps", true, env.Dir, f.frps, []string{"-c", sp}, env.ExtraEnv)
	if err != nil {
		return nil, err
	}
	in.Procs = append(in.Procs, srv)
	if err := waitListening(ctx, fmt.Sprintf("127.0.0.1:%d", ports[0]), in.Procs); err != nil {
		in.Stop()
		return nil, fmt.Errorf("frps: %w", err)
	}
	if opts.EdgeBase {
		in.markEdgeBase()
	}
	cl, err := startProc("frpc", false, env.Dir, f.frpc, []string{"-c", cp}, env.ExtraEnv)
	if err != nil {
		in.Stop()
		return nil, err
	}
	in.Procs = append(in.Procs, cl)
	return in, nil
}

// relaySystem is the harness's own one-process userspace relay (see
// runRelayChild).
type relaySystem struct{}

func (relaySystem) Name() string     { return SystemRelay }
func (relaySystem) Available() error { return nil }
func (relaySystem) Version() string {
	return "the harness's one-process Go relay, 32 KiB read/write copy"
}
func (relaySystem) HTTPRouting() bool { return true }
func (relaySystem) Start(_ context.Context, env Env, opts StartOptions) (*Instance, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable to start the relay: %w", err)
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	in := &Instance{System: SystemRelay, Addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), Started: time.Now()}
	spec := in.Addr + "=" + env.TargetTCP
	if opts.HTTP {
		in.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
		in.HTTPHost = HTTPHostName
		spec += "," + in.HTTPAddr + "=" + env.TargetHTTP
	}
	p, err := startProc("relay", true, env.Dir, self, nil, append([]string{childEnv + "=relay", relayEnv + "=" + spec}, env.ExtraEnv...))
	if err != nil {
		return nil, err
	}
	in.Procs = append(in.Procs, p)
	return in, nil
}
