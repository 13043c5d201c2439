package main

import (
	"bytes"
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
