package main

import (
	"github.com/sluicehq/sluice/internal/testutil"

	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if buildDir != "" {
			os.RemoveAll(buildDir)
		}
		os.Exit(code)
	}))
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

// sluiceBinary builds the command once per test run.
func sluiceBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped in -short mode")
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "sluice-smoke-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "sluice")
		buildErr = goBuild(binPath)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// goBuild builds this command into out with the extra build flags.
func goBuild(out string, flags ...string) error {
	// The go command that runs this test puts itself first on PATH.
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	args := append(append([]string{"build", "-o", out}, flags...), ".")
	if msg, err := exec.Command(gobin, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, msg)
	}
	return nil
}

// proc is a sluice process whose stdout is read line by line.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	lines  chan string
	stderr testutil.SyncBuffer
	done   chan struct{}
	code   int
}

func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	return startBin(t, sluiceBinary(t), args...)
}

// startBin starts the sluice binary at bin.
func startBin(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, cmd: exec.Command(bin, args...), lines: make(chan string, 100), done: make(chan struct{})}
	// A state directory per test: edges keep leases and their loopback
	// certificate there, and tests must not share them (or the user's).
	p.cmd.Env = append(os.Environ(), "SLUICE_SERVER=", "SLUICE_TOKEN=", "SLUICE_CONFIG=", "XDG_STATE_HOME="+stateHome(t))
	p.cmd.Stderr = &p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

var stateHomes sync.Map // *testing.T → string

// stateHome is the test's XDG_STATE_HOME, the same for all its processes.
func stateHome(t *testing.T) string {
	if d, ok := stateHomes.Load(t); ok {
		return d.(string)
	}
	d := t.TempDir()
	stateHomes.Store(t, d)
	return d
}

// waitLine returns the submatches of the first stdout line matching re.
func (p *proc) waitLine(re string) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l := <-p.lines:
			if m := rx.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-p.done:
			p.t.Fatalf("%v exited (code %d) before printing %q; stderr:\n%s", p.cmd.Args, p.code, re, p.stderr.String())
		case <-timeout:
			p.t.Fatalf("%v printed no line matching %q in 20 s; stderr:\n%s", p.cmd.Args, re, p.stderr.String())
		}
	}
}

// stop sends sig and returns the exit code.
func (p *proc) stop(sig os.Signal) int {
	p.t.Helper()
	p.cmd.Process.Signal(sig)
	return p.wait()
}

func (p *proc) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(20 * time.Second):
		p.t.Fatalf("%v did not exit within 20 s; stderr:\n%s", p.cmd.Args, p.stderr.String())
		return -1
	}
}

// viaIngress returns a client that sends every request to addr, whatever the
// host in the URL (as *.localhost resolves to loopback in browsers).
func viaIngress(addr string) *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		},
	}}
}

func TestSmokeDev(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app says hi to %s", r.URL.Path)
	}))
	defer app.Close()
	port := strconv.Itoa(app.Listener.Addr().(*net.TCPAddr).Port)
	p := startProc(t, "dev", port, "--http", "127.0.0.1:0")
	m := p.waitLine(`^Forwarding (http://[a-z0-9-]+\.localhost:(\d+)) -> localhost:` + port + `$`)
	url, httpPort := m[1], m[2]
	c := viaIngress("127.0.0.1:" + httpPort)
	defer c.CloseIdleConnections()
	resp, err := c.Get(url + "/smoke")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "app says hi to /smoke" {
		t.Fatalf("through %s: %d %q", url, resp.StatusCode, body)
	}
	if code := p.stop(os.Interrupt); code != 0 {
		t.Fatalf("sluice dev exited %d after SIGINT, want 0; stderr:\n%s", code, p.stderr.String())
	}
	if !regexp.MustCompile(`msg="GET /smoke" .*status=200`).MatchString(p.stderr.String()) {
		t.Fatalf("no request log line for GET /smoke; stderr:\n%s", p.stderr.String())
	}
}

func TestSmokeDevDemoWithoutLocalService(t *testing.T) {
	p := startProc(t, "dev", strconv.Itoa(testutil.FreePort(t)), "--http", "127.0.0.1:0")
	m := p.waitLine(`^Forwarding (http://\S+:(\d+)) -> `)
	c := viaIngress("127.0.0.1:" + m[2])
	defer c.CloseIdleConnections()
	resp, err := c.Get(m[1] + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Sluice-Demo") != "1" || !strings.Contains(string(body), "nothing is listening") {
		t.Fatalf("demo fallback: %d %q", resp.StatusCode, body)
	}
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

func TestSmokeServerAndTCPAgent(t *testing.T) {
	listen := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	httpPort := testutil.FreePort(t)
	remote := testutil.FreePort(t)
	svc := testutil.SumService(t)

	srv := startProc(t, "server", "--listen", listen, "--http", fmt.Sprintf("127.0.0.1:%d", httpPort), "--domain", "localhost", "--token", "T", "--insecure")
	srv.waitLine(`agents connect to`)
	ag := startProc(t, "tcp", svc, "--server", listen, "--token", "T", "--remote-port", strconv.Itoa(remote), "--insecure")
	ag.waitLine(fmt.Sprintf(`^Forwarding tcp://127\.0\.0\.1:%d -> %s$`, remote, regexp.QuoteMeta(svc)))

	const size = 100 << 20
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", remote))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(120 * time.Second))
	var seed [32]byte
	seed[0] = 42
	src := io.LimitReader(rand.NewChaCha8(seed), size)
	h := sha256.New()
	go func() {
		io.Copy(io.MultiWriter(c, h), src)
		c.(*net.TCPConn).CloseWrite()
	}()
	reply, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s %d", hex.EncodeToString(h.Sum(nil)), size)
	if string(reply) != want {
		t.Fatalf("service saw %q, want %q", reply, want)
	}

	// The same edge serves an HTTP tunnel from another process.
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "http ok") }))
	defer app.Close()
	appPort := strconv.Itoa(app.Listener.Addr().(*net.TCPAddr).Port)
	hp := startProc(t, "http", appPort, "--server", listen, "--token", "T", "--name", "myapp", "--insecure")
	m := hp.waitLine(`^Forwarding (http://myapp\.localhost:\d+) -> `)
	hc := viaIngress(fmt.Sprintf("127.0.0.1:%d", httpPort))
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(m[1] + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "http ok" {
		t.Fatalf("http tunnel: %d %q", resp.StatusCode, body)
	}

	// A wrong token is exit code 3 with a message naming the token.
	bad := startProc(t, "tcp", svc, "--server", listen, "--token", "wrong", "--insecure")
	if code := bad.wait(); code != exitAuth || !strings.Contains(bad.stderr.String(), "token") {
		t.Fatalf("wrong token: exit %d, stderr %q; want %d and a message about the token", code, bad.stderr.String(), exitAuth)
	}
	// An edge that is not there is exit code 4, naming the address.
	gone := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	un := startProc(t, "tcp", svc, "--server", gone, "--token", "T", "--insecure", "--connect-timeout", "300ms")
	if code := un.wait(); code != exitUnreachable || !strings.Contains(un.stderr.String(), gone) {
		t.Fatalf("unreachable edge: exit %d, stderr %q; want %d naming %s", code, un.stderr.String(), exitUnreachable, gone)
	}

	for _, p := range []*proc{hp, ag, srv} {
		if code := p.stop(syscall.SIGTERM); code != 0 {
			t.Errorf("%v exited %d after SIGTERM; stderr:\n%s", p.cmd.Args, code, p.stderr.String())
		}
	}
}

// TestSmokeThrowawayTLSPin: a loopback edge without a certificate makes one
// and prints its pin; an agent passing --pin connects, one without is told
// what to pass (exit 4).
func TestSmokeThrowawayTLSPin(t *testing.T) {
	listen := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	svc := testutil.SumService(t)
	srv := startProc(t, "server", "--listen", listen, "--token", "T")
	pin := srv.waitLine(`agents pass --pin ([0-9a-f:]{95})$`)[1]
	srv.waitLine(`agents connect to`)
	ag := startProc(t, "tcp", svc, "--server", listen, "--token", "T", "--pin", pin)
	m := ag.waitLine(`^Forwarding tcp://(\S+) -> `)
	c, err := net.Dial("tcp", m[1])
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "over TLS")
	c.(*net.TCPConn).CloseWrite()
	reply, err := io.ReadAll(c)
	c.Close()
	sum := sha256.Sum256([]byte("over TLS"))
	if want := hex.EncodeToString(sum[:]) + " 8"; string(reply) != want || err != nil {
		t.Fatalf("through the TLS tunnel: %q, %v; want %q", reply, err, want)
	}
	nopin := startProc(t, "tcp", svc, "--server", listen, "--token", "T")
	if code := nopin.wait(); code != exitUnreachable || !strings.Contains(nopin.stderr.String(), "--pin") {
		t.Fatalf("agent without the pin: exit %d, stderr %q; want %d and a hint about --pin", code, nopin.stderr.String(), exitUnreachable)
	}
	for _, p := range []*proc{ag, srv} {
		if code := p.stop(os.Interrupt); code != 0 {
			t.Errorf("%v exited %d; stderr:\n%s", p.cmd.Args, code, p.stderr.String())
		}
	}
}
