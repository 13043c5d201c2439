package deploy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testutil"
	"github.com/sluicehq/sluice/transport"
)

// The units' command lines and the example files, run as shipped but for
// the addresses (loopback ports instead of 80, 443, 7835), the directories
// systemd would make, and a private CA instead of a public one: an edge from
// sluice-edge.service and an agent from sluice-agent.service with
// agent.yml.example connect, and bytes cross the agent's TCP tunnel.
func TestUnitCommandLinesRunTogether(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs sluice; skipped in -short mode")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "sluice")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/sluice").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ca, err := transport.NewCA("deploy test CA")
	if err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(dir, "credentials")
	os.Mkdir(creds, 0o700)
	cert, err := ca.Issue("tunnel.example.com", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := transport.WritePEMFiles(creds, "agent-tls", cert); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := ca.WriteCAFile(caFile); err != nil {
		t.Fatal(err)
	}
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)) }
	agents, edgeMetrics, tcpPort := port(), port(), testutil.FreePort(t)
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o700)

	edgeArgs := execStart(t, "sluice-edge.service", bin, map[string]string{
		":7835": agents, ":80": port(), ":443": port(), "127.0.0.1:9100": edgeMetrics,
		"${STATE_DIRECTORY}": state, "${CREDENTIALS_DIRECTORY}": creds,
	})
	edge := start(t, edgeArgs, envFile(t, "edge.env.example"))
	edge.wait(t, `^sluice edge: agents connect to `)

	echo := testutil.EchoServer(t)
	yml, err := os.ReadFile("agent.yml.example")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer("tunnel.example.com:7835", agents, "127.0.0.1:5432", echo, "15432", fmt.Sprint(tcpPort)).Replace(string(yml))
	if err := os.WriteFile(filepath.Join(dir, "agent.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	agentMetrics := port()
	agentArgs := execStart(t, "sluice-agent.service", bin, map[string]string{
		"/etc/sluice/agent.yml": filepath.Join(dir, "agent.yml"), "127.0.0.1:9101": agentMetrics,
	})
	token := envFile(t, "edge.env.example")
	agentEnv := []string{"SLUICE_CA=" + caFile, "SLUICE_INSPECT=127.0.0.1:0"}
	for _, kv := range token {
		if strings.HasPrefix(kv, "SLUICE_TOKEN=") {
			agentEnv = append(agentEnv, kv) // agent.env holds the edge's token
		}
	}
	agent := start(t, agentArgs, agentEnv)
	agent.wait(t, `^Forwarding tcp://\S+:`+fmt.Sprint(tcpPort)+` `, `^Forwarding https://myapp\.tunnel\.example\.com:\d+ `)

	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", tcpPort), 5*time.Second)
	if err != nil {
		t.Fatalf("the agent's TCP tunnel: %v", err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "through the shipped units\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if line != "through the shipped units\n" {
		t.Fatalf("echo through the tunnel: %q, %v", line, err)
	}
	sc := testutil.ScrapeMetrics(t, "http://"+edgeMetrics+"/metrics")
	if v := sc.Must(t, "sluice_edge_sessions"); v != 2 {
		t.Errorf("sluice_edge_sessions = %v; want 2 (sluice start: a session per tunnel)", v)
	}
	// sluice start: an agent per tunnel of the file, each its own series.
	sc = testutil.ScrapeMetrics(t, "http://"+agentMetrics+"/metrics")
	for _, a := range []string{"localhost:3000/http/myapp", echo + "/tcp/"} {
		if v := sc.Must(t, "sluice_agent_session_connected", "agent", a); v != 1 {
			t.Errorf("sluice_agent_session_connected{agent=%q} = %v", a, v)
		}
	}
	for _, p := range []*process{agent, edge} {
		if code := p.stop(t); code != 0 {
			t.Errorf("%s exited %d after SIGTERM:\n%s", p.name, code, p.out.String())
		}
	}
}

// execStart returns a unit's ExecStart as arguments, the binary replaced by
// bin and each word in repl by its value.
func execStart(t *testing.T, unit, bin string, repl map[string]string) []string {
	t.Helper()
	d := directives(t, unit)
	if len(d["ExecStart"]) != 1 {
		t.Fatalf("%s: ExecStart %q", unit, d["ExecStart"])
	}
	args := strings.Fields(d["ExecStart"][0])
	if args[0] != "/usr/local/bin/sluice" {
		t.Fatalf("%s runs %s; the docs install /usr/local/bin/sluice", unit, args[0])
	}
	args[0] = bin
	for i, a := range args {
		for from, to := range repl {
			a = strings.ReplaceAll(a, from, to)
		}
		args[i] = a
	}
	return args
}

// envFile reads KEY=value lines as systemd's EnvironmentFile= does (here
// without quotes or continuations, which the examples do not use).
func envFile(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			env = append(env, l)
		}
	}
	return env
}

type process struct {
	name  string
	cmd   *exec.Cmd
	out   testutil.SyncBuffer
	lines chan string
	done  chan struct{}
}

// start runs args with only env's SLUICE_ settings (none of the caller's).
func start(t *testing.T, args, env []string) *process {
	t.Helper()
	p := &process{name: filepath.Base(args[0]) + " " + args[1], cmd: exec.Command(args[0], args[1:]...), lines: make(chan string, 256), done: make(chan struct{})}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Env = append(p.cmd.Env, env...)
	r, w := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.out.Write([]byte(sc.Text() + "\n"))
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
	}()
	go func() {
		p.cmd.Wait()
		w.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait returns once a line has matched each of res, in any order.
func (p *process) wait(t *testing.T, res ...string) {
	t.Helper()
	left := map[string]*regexp.Regexp{}
	for _, re := range res {
		left[re] = regexp.MustCompile(re)
	}
	timeout := time.After(20 * time.Second)
	for len(left) > 0 {
		select {
		case l := <-p.lines:
			for re, rx := range left {
				if rx.MatchString(l) {
					delete(left, re)
				}
			}
		case <-p.done:
			t.Fatalf("%s exited waiting for %v:\n%s", p.name, res, p.out.String())
		case <-timeout:
			t.Fatalf("%s: no lines %v in 20 s:\n%s", p.name, res, p.out.String())
		}
	}
}

func (p *process) stop(t *testing.T) int {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Errorf("%s did not stop within 20 s of SIGTERM", p.name)
		p.cmd.Process.Kill()
		<-p.done
	}
	return p.cmd.ProcessState.ExitCode()
}
