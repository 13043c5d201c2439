package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

const fullFile = `# every action, as docs/POLICY.md shows them
on_tcp_connect:
  - name: office
    actions:
      - type: restrict-ips
        config: {allow: [10.0.0.0/8, "2001:db8::/32"], deny: [10.9.0.0/16]}
      - type: rate-limit
        config: {limit: 100/1m}
on_http_request:
  - name: admin
    expressions:
      - req.path.startsWith('/admin')
      - "'x-admin' in req.headers"
    actions:
      - type: basic-auth
        config:
          realm: admin
          credentials: ["alice:secret1"]
  - name: hooks
    expressions: ["req.path == '/hooks/github'"]
    actions:
      - type: verify-webhook
        config: {provider: github, secret: s3cret}
  - name: sso
    expressions: ["req.host == 'team.example.com'"]
    actions:
      - type: openid-connect
        config:
          issuer: https://accounts.example.com
          client_id: id
          client_secret: topsecret
          allow_domains: [example.com]
          session_duration: 8h
  - name: shape
    actions:
      - type: add-headers
        config: {headers: {X-Env: prod}}
      - type: remove-headers
        config: {headers: [X-Debug]}
      - type: url-rewrite
        config: {from: "^/old/(.*)$", to: "/new/$1"}
  - name: moved
    actions:
      - type: redirect
        config: {from: "^/blog/(.*)", to: "https://blog.example.com/$1", status: 301}
  - name: maintenance
    expressions: ["req.method == 'DELETE'"]
    actions:
      - type: custom-response
        config: {status: 503, body: "back soon", headers: {Retry-After: "60"}}
  - name: no-bots
    expressions: ["'user-agent' in req.headers && req.headers['user-agent'][0].contains('BadBot')"]
    actions:
      - type: deny
on_http_response:
  - name: security headers
    expressions: ["res.status < 400"]
    actions:
      - type: add-headers
        config: {headers: {Strict-Transport-Security: max-age=63072000}}
      - type: remove-headers
        config: {headers: [Server]}
`

func TestLoadReadsEveryActionAndCompiles(t *testing.T) {
	spec, err := Parse([]byte(fullFile), "full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.OnTCPConnect) != 1 || len(spec.OnHTTPRequest) != 7 || len(spec.OnHTTPResponse) != 1 {
		t.Fatalf("rules per phase: %d %d %d", len(spec.OnTCPConnect), len(spec.OnHTTPRequest), len(spec.OnHTTPResponse))
	}
	if spec.OnHTTPRequest[0].Line != 10 || spec.OnHTTPRequest[0].Name != "admin" {
		t.Fatalf("first request rule at line %d named %q", spec.OnHTTPRequest[0].Line, spec.OnHTTPRequest[0].Name)
	}
	if _, err := Compile(Options{}, Layer{Source: "full.yaml", Spec: spec}); err != nil {
		t.Fatal(err)
	}
	// The wire form carries everything, and reads back to the same policy.
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	var back Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(&back)
	if string(b) != string(b2) {
		t.Fatalf("JSON round trip differs:\n%s\n%s", b, b2)
	}
	if _, err := Compile(Options{}, Layer{Source: "agent", Spec: &back}); err != nil {
		t.Fatal(err)
	}
}

func TestBadFilesNameTheLineAndTheRule(t *testing.T) {
	cases := []struct {
		name, src string
		want      []string
	}{
		{"unknown phase", "on_connect:\n  - actions: [{type: deny}]\n", []string{"test.yaml:1:", `unknown phase "on_connect"`}},
		{"unknown action", "on_http_request:\n  - name: a\n    actions:\n      - type: oauth2\n", []string{"test.yaml:4:", `rule "a"`, `"oauth2" is unknown`}},
		{"unknown config key", "on_http_request:\n  - name: b\n    actions:\n      - type: deny\n        config: {code: 403}\n", []string{"test.yaml:5:", `rule "b"`, `unknown key "code"`}},
		{"wrong type", "on_http_request:\n  - name: c\n    actions:\n      - type: deny\n        config: {status: nope}\n", []string{"test.yaml:5:", `rule "c"`, "status"}},
		{"no actions", "on_http_request:\n  - name: d\n", []string{"test.yaml:2:", `rule "d"`, "no actions"}},
		{"unnamed rule", "on_http_request:\n  - actions: [{type: deny}]\n  - actions: [{type: nope}]\n", []string{"test.yaml:3:", `rule "#2"`}},
		{"unknown rule key", "on_http_request:\n  - name: e\n    when: x\n    actions: [{type: deny}]\n", []string{"test.yaml:3:", `unknown key "when"`}},
		{"not yaml", "on_http_request: [\n", []string{"test.yaml", "not valid YAML"}},
		{"bad cel", "on_http_request:\n  - name: f\n    expressions: [\"req.path ==\"]\n    actions: [{type: deny}]\n", []string{"test.yaml:2:", `rule "f"`, "Syntax error"}},
		{"undeclared variable", "on_http_request:\n  - name: g\n    expressions: [\"req.body == 'x'\"]\n    actions: [{type: deny}]\n", []string{"test.yaml:2:", `rule "g"`, "undeclared reference"}},
		{"not bool", "on_http_request:\n  - name: h\n    expressions: [\"req.path\"]\n    actions: [{type: deny}]\n", []string{`rule "h"`, "not a bool"}},
		{"request var on connect", "on_tcp_connect:\n  - name: i\n    expressions: [\"req.path == '/'\"]\n    actions: [{type: deny}]\n", []string{"test.yaml:2:", `rule "i" (on_tcp_connect)`, "undeclared"}},
		{"bad cidr", "on_tcp_connect:\n  - name: j\n    actions:\n      - type: restrict-ips\n        config: {allow: [10.0.0.300/8]}\n", []string{"test.yaml:4:", `rule "j"`, "allow[0]", "not a CIDR"}},
		{"bad rate", "on_tcp_connect:\n  - name: k\n    actions:\n      - type: rate-limit\n        config: {limit: lots}\n", []string{"test.yaml:4:", `rule "k"`, "N/DURATION"}},
		{"auth on connect", "on_tcp_connect:\n  - name: l\n    actions:\n      - type: basic-auth\n        config: {credentials: [\"a:b\"]}\n", []string{"test.yaml:4:", `rule "l"`, "cannot run in on_tcp_connect"}},
		{"deny in response", "on_http_response:\n  - name: m\n    actions: [{type: deny}]\n", []string{"test.yaml:3:", `rule "m"`, "cannot run in on_http_response"}},
		{"bad provider", "on_http_request:\n  - name: n\n    actions:\n      - type: verify-webhook\n        config: {provider: gitlab, secret: x}\n", []string{"test.yaml:4:", `provider "gitlab"`}},
		{"bad duration", "on_http_request:\n  - name: o\n    actions:\n      - type: verify-webhook\n        config: {provider: stripe, secret: x, tolerance: soon}\n", []string{"test.yaml:5:", "duration"}},
		{"identity header", "on_http_request:\n  - name: p\n    actions:\n      - type: add-headers\n        config: {headers: {X-Sluice-User-Email: a@b.c}}\n", []string{`rule "p"`, "verified sign-in"}},
		{"bad regexp", "on_http_request:\n  - name: q\n    actions:\n      - type: url-rewrite\n        config: {from: \"(\", to: /}\n", []string{`rule "q"`, "from:"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := Parse([]byte(tc.src), "test.yaml")
			if err == nil {
				_, err = Compile(Options{}, Layer{Source: "test.yaml", Spec: spec})
			}
			if err == nil {
				t.Fatal("accepted")
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("%T is not *policy.Error: %v", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestHtpasswdFileIsReadBesideThePolicy(t *testing.T) {
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte("# team\nbob:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(file, []byte("on_http_request:\n  - actions:\n      - type: basic-auth\n        config: {htpasswd_file: users}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(Options{}, Layer{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	r := get("http://a.test/")
	r.SetBasicAuth("bob", "pw")
	wantStatus(t, serve(p, r, "192.0.2.1:1000", nil), 200)

	if err := os.WriteFile(filepath.Join(dir, "users"), []byte("bob:plain\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(file); err == nil || !strings.Contains(err.Error(), "policy.yaml:4") || !strings.Contains(err.Error(), "users:1") {
		t.Fatalf("a malformed htpasswd file: %v", err)
	}
}

func TestUnknownWireActionIsRefusedByRule(t *testing.T) {
	wire := `{"on_http_request":[{"name":"future","actions":[{"type":"jwt-validation","config":{}}]},` +
		`{"name":"newer","actions":[{"type":"deny","config":{"status":403,"body":"x"}}]}]}`
	var spec Spec
	if err := json.Unmarshal([]byte(wire), &spec); err != nil {
		t.Fatalf("the registration itself must still decode: %v", err)
	}
	_, err := Compile(Options{}, Layer{Source: "agent", Spec: &spec})
	if err == nil || !strings.Contains(err.Error(), `rule "future"`) || !strings.Contains(err.Error(), "jwt-validation") {
		t.Fatalf("unknown action: %v", err)
	}
	spec.OnHTTPRequest = spec.OnHTTPRequest[1:]
	_, err = Compile(Options{}, Layer{Source: "agent", Spec: &spec})
	if err == nil || !strings.Contains(err.Error(), `rule "newer"`) || !strings.Contains(err.Error(), `"body"`) {
		t.Fatalf("unknown field: %v", err)
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	spec, err := Parse([]byte(fullFile), "full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("registered", "policy", spec, "secret", Secret("topsecret"))
	slog.New(slog.NewTextHandler(&logged, nil)).Info("registered", "policy", spec, "secret", Secret("topsecret"))
	fmt.Fprintf(&logged, "%v %+v %#v %s", Secret("topsecret"), Secret("topsecret"), Secret("topsecret"), Secret("topsecret"))
	red, _ := json.Marshal(spec.Redacted())
	logged.Write(red)
	for _, s := range []string{"topsecret", "s3cret", "secret1"} {
		if strings.Contains(logged.String(), s) {
			t.Fatalf("%q printed:\n%s", s, logged.String())
		}
	}
	if !strings.Contains(string(red), "alice:[redacted]") {
		t.Fatalf("redacted view lost the user name: %s", red)
	}
	// The original is untouched: it still works.
	if b, _ := json.Marshal(spec); !strings.Contains(string(b), "topsecret") {
		t.Fatal("Redacted changed the spec itself")
	}
}
