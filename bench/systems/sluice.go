package systems

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/proc"
	"github.com/sluicehq/sluice/bench/target"
)

// sluiceSystem runs `sluice server` and one `sluice tcp` agent (plus a
// `sluice http` agent when HTTP is wanted), logging errors only (as the
// peers are configured: rathole RUST_LOG=error, frp log.level=error), so no
// system pays for a log line per request; for the same reason the HTTP
// agent runs with --log-requests=false (its default parses and logs every
// request, which neither peer does at log level error) and --inspect=false
// (the request inspector captures every request).
//
// Plain, the agent and the edge speak TCP (--insecure), as the peers do in
// their default configurations; with tls, TLS 1.3 with a certificate the
// harness issues and the agent verifies with --ca, as users deploy it.
type sluiceSystem struct {
	bin     string
	binErr  error // why there is no binary (e.g. the build failed)
	tls     bool
	inspect bool // the HTTP agent logs and captures every request, as by default
	policy  bool // the HTTP tunnel carries benchPolicy's rules
}

// Sluice returns the plain-transport sluice system for a binary, or one
// that reports binErr as the reason it is unavailable.
func Sluice(bin string, binErr error) System {
	return &sluiceSystem{bin: bin, binErr: binErr}
}

// SluiceTLS is Sluice with TLS 1.3 between agent and edge.
func SluiceTLS(bin string, binErr error) System {
	return &sluiceSystem{bin: bin, binErr: binErr, tls: true}
}

// SluiceInspect is Sluice with the HTTP agent as `sluice http` runs by
// default: request logging and the request inspector on. It is measured in
// the HTTP scenario only.
func SluiceInspect(bin string, binErr error) System {
	return &sluiceSystem{bin: bin, binErr: binErr, inspect: true}
}

// SluicePolicy is Sluice with a traffic policy on the HTTP tunnel, set up
// with the flags a user protects a tunnel with: --basic-auth, --allow-cidr
// and a --policy file holding one rule with a CEL condition. It is measured
// in the HTTP scenario only; its clients send the credentials.
func SluicePolicy(bin string, binErr error) System {
	return &sluiceSystem{bin: bin, binErr: binErr, policy: true}
}

const sluiceToken = "bench"

// The policy sluice-policy's HTTP tunnel runs, every rule of which each
// request passes: the right credentials, from loopback, for a path the
// condition lets through (the condition is evaluated on every request).
const (
	BenchPolicyUser     = "bench"
	BenchPolicyPassword = "bench-password"
	benchPolicyCIDR     = "127.0.0.0/8"
	benchPolicyFile     = `# sluice-bench: one rule with a CEL condition, beside --basic-auth and --allow-cidr
on_http_request:
  - name: no admin pages
    expressions: ["req.path.startsWith('/admin')"]
    actions:
      - type: deny
        config: {status: 404}
`
)

func (s *sluiceSystem) Name() string {
	switch {
	case s.tls:
		return plan.SluiceTLS
	case s.inspect:
		return plan.SluiceInspect
	case s.policy:
		return plan.SluicePolicy
	}
	return plan.Sluice
}

// OnlyScenarios limits sluice-inspect and sluice-policy to the HTTP
// scenario, the only one the inspector and the HTTP policy touch.
func (s *sluiceSystem) OnlyScenarios() []string {
	if s.inspect || s.policy {
		return []string{plan.HTTP}
	}
	return nil
}

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
	v := "built from this repository"
	if out := firstLine(s.bin, "version"); out != "" && !strings.Contains(strings.ToLower(out), "usage") && !strings.Contains(strings.ToLower(out), "unknown") {
		v = out
	}
	if s.tls {
		v += "; TLS 1.3, ECDSA P-256 certificate verified with --ca"
	}
	if s.inspect {
		v += "; HTTP agent with request logging and the inspector on (its defaults), log lines written to a file"
	}
	if s.policy {
		v += "; HTTP tunnel with --basic-auth, --allow-cidr " + benchPolicyCIDR + " and a --policy file with one CEL condition"
	}
	return v
}

func (s *sluiceSystem) Start(ctx context.Context, env Env, opts StartOptions) (*Instance, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	ctrl := fmt.Sprintf("127.0.0.1:%d", ports[0])
	httpAddr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	pub := fmt.Sprintf("127.0.0.1:%d", ports[2])
	serverTransport := []string{"--insecure"}
	agentTransport := []string{"--insecure"}
	if s.tls {
		cert, key := filepath.Join(env.Dir, "edge-cert.pem"), filepath.Join(env.Dir, "edge-key.pem")
		if err := writeEdgeCert(cert, key); err != nil {
			return nil, err
		}
		serverTransport = []string{"--tls-cert", cert, "--tls-key", key}
		agentTransport = []string{"--ca", cert, "--server-name", "localhost"}
	}
	in := &Instance{System: s.Name(), Addr: pub, Started: time.Now()}
	// Each run's edge keeps its leases and certificate in the run's own
	// directory, not in the user's state directory.
	args := append([]string{"server", "--listen", ctrl, "--http", httpAddr, "--domain", "localhost", "--token", sluiceToken, "--log-level", "error", "--state-dir", filepath.Join(env.Dir, "sluice-state")}, serverTransport...)
	edge, err := in.startEdge(ctx, env, opts, "sluice server", s.bin, args, nil, ctrl)
	if err != nil {
		return nil, err
	}
	tcpAgent := func(label string, port int) error {
		args := append([]string{"tcp", env.TargetTCP, "--server", edge, "--token", sluiceToken, "--remote-port", fmt.Sprint(port), "--log-level", "error"}, agentTransport...)
		ag, err := proc.Start(label, false, env.Dir, s.bin, args, nil)
		if err != nil {
			return err
		}
		in.Procs = append(in.Procs, ag)
		return nil
	}
	if err := tcpAgent("sluice tcp agent", ports[2]); err != nil {
		in.Stop()
		return nil, err
	}
	in.addAgent = func(_ context.Context, i int) (string, error) {
		port, err := freePorts(1)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("127.0.0.1:%d", port[0]), tcpAgent(fmt.Sprintf("sluice tcp agent %d", i), port[0])
	}
	if opts.HTTP {
		_, tport, _ := net.SplitHostPort(env.TargetHTTP)
		httpFlags := []string{"--log-requests=false", "--inspect=false", "--log-level", "error"}
		if s.inspect {
			// The agent as `sluice http` runs by default: the inspector on
			// (here on a free port) and one log line per request, written
			// at the default log level to the process's log file as they
			// would be to the user's terminal. Discarding them by the log
			// level, as for the other systems, hid most of what the
			// default costs: the line's formatting and its write.
			httpFlags = []string{"--inspect", "127.0.0.1:0"}
		}
		if s.policy {
			file := filepath.Join(env.Dir, "policy.yaml")
			if err := os.WriteFile(file, []byte(benchPolicyFile), 0o600); err != nil {
				in.Stop()
				return nil, err
			}
			httpFlags = append(httpFlags, "--basic-auth", BenchPolicyUser+":"+BenchPolicyPassword, "--allow-cidr", benchPolicyCIDR, "--policy", file)
			in.HTTPAuth = BenchPolicyUser + ":" + BenchPolicyPassword
		}
		args := append(append([]string{"http", tport, "--server", edge, "--token", sluiceToken, "--name", strings.TrimSuffix(target.HTTPHostName, ".localhost")}, httpFlags...), agentTransport...)
		hag, err := proc.Start("sluice http agent", false, env.Dir, s.bin, args, nil)
		if err != nil {
			in.Stop()
			return nil, err
		}
		in.Procs = append(in.Procs, hag)
		in.HTTPAddr = httpAddr
		in.HTTPHost = target.HTTPHostName
	}
	return in, nil
}
