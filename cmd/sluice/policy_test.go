package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
