package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/internal/testutil"
)

// A policy mistake stops the command with exit 2 before it dials the edge,
// naming the flag, or the file's line and rule.
func TestBadPolicyExitsTwoNamingLineAndRule(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(bad, []byte("on_http_request:\n  - name: admins\n    expressions: [\"req.path.startsWith('/admin'\"]\n    actions: [{type: deny}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unknown := filepath.Join(dir, "unknown.yaml")
	if err := os.WriteFile(unknown, []byte("on_http_request:\n  - name: hooks\n    actions:\n      - type: verify-webhook\n        config: {provider: github, secrett: x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := filepath.Join(dir, "sluice.yml")
	if err := os.WriteFile(start, []byte("server: 127.0.0.1:1\ntoken: t\ntunnels:\n  - type: http\n    local: 3000\n    rate_limit: often\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"http", "3000", "--server", "127.0.0.1:1", "--token", "t", "--policy", bad}, []string{bad + ":2", `rule "admins"`, "Syntax error"}},
		{[]string{"http", "3000", "--server", "127.0.0.1:1", "--token", "t", "--policy", unknown}, []string{unknown + ":5", `rule "hooks"`, `unknown key "secrett"`}},
		{[]string{"http", "3000", "--server", "127.0.0.1:1", "--token", "t", "--allow-cidr", "10.0.0.0/33"}, []string{"--allow-cidr", "not a CIDR"}},
		{[]string{"http", "3000", "--server", "127.0.0.1:1", "--token", "t", "--rate-limit", "10"}, []string{"--rate-limit", "N/DURATION"}},
		{[]string{"http", "3000", "--server", "127.0.0.1:1", "--token", "t", "--basic-auth", "alice"}, []string{"--basic-auth", "USER:PASS"}},
		{[]string{"http", "3000", "--server", "127.0.0.1:1", "--token", "t", "--verify-webhook", "gitlab:x"}, []string{`provider "gitlab"`}},
		{[]string{"http", "3000", "--server", "127.0.0.1:1", "--token", "t", "--oidc-client-id", "x"}, []string{"--oidc-issuer"}},
		{[]string{"tcp", "22", "--server", "127.0.0.1:1", "--token", "t", "--policy", bad}, []string{`rule "admins"`}},
		{[]string{"start", "-c", start}, []string{"tunnel 1", "rate_limit", "N/DURATION"}},
	}
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %s)", tc.args, code, stderr.String())
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%q: stderr %q lacks %q", tc.args, stderr.String(), w)
			}
		}
	}
}

// The tcp command has no HTTP policy flags: the flag parser names them.
func TestTCPHasNoHTTPPolicyFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"tcp", "22", "--server", "127.0.0.1:1", "--token", "t", "--basic-auth", "a:b"}, &stdout, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), "basic-auth") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

// The same keys in a `sluice start` file make the tunnel's policy; a
// policy file is read relative to the config file.
func TestStartTunnelPolicyKeys(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "admin.yaml"), []byte("on_http_request:\n  - name: admin\n    expressions: [\"req.path.startsWith('/admin')\"]\n    actions: [{type: deny}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "sluice.yml")
	if err := os.WriteFile(cfg, []byte(`server: 127.0.0.1:1
token: t
tunnels:
  - type: http
    local: 3000
    basic_auth: ["ana:plum"]
    allow_cidr: [10.0.0.0/8]
    rate_limit: 10/s
    response_header_add: ["X-Frame-Options: DENY"]
    policy: admin.yaml
  - type: tcp
    local: 22
    deny_cidr: [192.0.2.0/24]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, _, tunnels, err := parseStart([]string{"-c", cfg}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{tunnels[0].Policy.Summary(), tunnels[1].Policy.Summary()}
	want := []string{
		"on_tcp_connect: restrict-ips[restrict-ips] rate-limit[rate-limit]; on_http_request: basic-auth[basic-auth] admin[deny]; on_http_response: response headers added[add-headers]",
		"on_tcp_connect: restrict-ips[restrict-ips]",
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("tunnel %d: %s\nwant %s", i+1, got[i], want[i])
		}
	}
}

// sluice server --policy checks the file at start: exit 2 naming the line.
func TestServerPolicyFileIsChecked(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "edge.yaml")
	if err := os.WriteFile(bad, []byte("on_http_request:\n  - name: everyone\n    actions:\n      - type: rate-limit\n        config: {limit: fast}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"server", "--listen", "127.0.0.1:0", "--token", "t", "--insecure", "--policy", bad}, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "--policy") || !strings.Contains(stderr.String(), bad+":4") || !strings.Contains(stderr.String(), `rule "everyone"`) {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

// TestSmokePolicyFlags: the sluice binaries: an edge with --policy for
// every tunnel and an agent with --basic-auth and --response-header-add;
// curl-like requests get 401, then 200 with the header, and the edge's rule
// holds on the agent's tunnel.
func TestSmokePolicyFlags(t *testing.T) {
	listen := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	httpPort := testutil.FreePort(t)
	edgePolicy := filepath.Join(t.TempDir(), "edge.yaml")
	if err := os.WriteFile(edgePolicy, []byte("on_http_request:\n  - name: no admin\n    expressions: [\"req.path.startsWith('/admin')\"]\n    actions: [{type: deny, config: {status: 404}}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startProc(t, "server", "--listen", listen, "--http", fmt.Sprintf("127.0.0.1:%d", httpPort), "--domain", "localhost", "--token", "T", "--insecure", "--policy", edgePolicy)
	srv.waitLine(`agents connect to`)
	var reached atomic.Int64
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1); io.WriteString(w, "app") }))
	defer app.Close()
	appPort := strconv.Itoa(app.Listener.Addr().(*net.TCPAddr).Port)
	hp := startProc(t, "http", appPort, "--server", listen, "--token", "T", "--name", "guarded", "--insecure", "--inspect=false",
		"--basic-auth", "ana:plum-tree", "--response-header-add", "X-Frame-Options: DENY")
	m := hp.waitLine(`^Forwarding (http://guarded\.localhost:\d+) -> `)
	hc := viaIngress(fmt.Sprintf("127.0.0.1:%d", httpPort))
	defer hc.CloseIdleConnections()
	do := func(path string, auth bool) *http.Response {
		req, _ := http.NewRequest("GET", m[1]+path, nil)
		if auth {
			req.SetBasicAuth("ana", "plum-tree")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := do("/", false); resp.StatusCode != 401 || reached.Load() != 0 {
		t.Fatalf("without a password: %d, app reached %d times", resp.StatusCode, reached.Load())
	}
	if resp := do("/", true); resp.StatusCode != 200 || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("with the password: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := do("/admin/x", true); resp.StatusCode != 404 || reached.Load() != 1 {
		t.Fatalf("the edge's rule: %d, app reached %d times", resp.StatusCode, reached.Load())
	}
	for _, p := range []*proc{hp, srv} {
		if code := p.stop(syscall.SIGTERM); code != 0 {
			t.Errorf("%v exited %d after SIGTERM; stderr:\n%s", p.cmd.Args, code, p.stderr.String())
		}
	}
}
