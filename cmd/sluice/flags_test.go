package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
)

func testCommand(t *testing.T) (*command, *string, *int, *stringList) {
	t.Helper()
	c := newCommand("test", "test", io.Discard)
	server := c.fs.String("server", "default", "")
	port := c.fs.Int("remote-port", 0, "")
	var toks stringList
	c.fs.Var(&toks, "token", "")
	return c, server, port, &toks
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sluice.yml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedenceFlagEnvFile(t *testing.T) {
	file := writeFile(t, "server: from-file:1\nremote_port: 7\ntoken: [a, b]\n")
	cases := []struct {
		name       string
		args       []string
		env        map[string]string
		wantServer string
		wantPort   int
	}{
		{"file only", []string{"-c", file}, nil, "from-file:1", 7},
		{"env beats file", []string{"-c", file}, map[string]string{"SLUICE_SERVER": "from-env:2", "SLUICE_REMOTE_PORT": "8"}, "from-env:2", 8},
		{"flag beats env", []string{"-c", file, "--server", "from-flag:3"}, map[string]string{"SLUICE_SERVER": "from-env:2"}, "from-flag:3", 7},
		{"default without any", nil, nil, "default", 0},
		{"config from env", nil, map[string]string{"SLUICE_CONFIG": file}, "from-file:1", 7},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"SLUICE_SERVER", "SLUICE_REMOTE_PORT", "SLUICE_CONFIG", "SLUICE_TOKEN"} {
				t.Setenv(k, tc.env[k])
			}
			c, server, port, _ := testCommand(t)
			if _, err := c.parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if *server != tc.wantServer || *port != tc.wantPort {
				t.Fatalf("server %q port %d, want %q %d", *server, *port, tc.wantServer, tc.wantPort)
			}
		})
	}
}

func TestFileListsFillRepeatableFlags(t *testing.T) {
	t.Setenv("SLUICE_TOKEN", "")
	c, _, _, toks := testCommand(t)
	if _, err := c.parse([]string{"-c", writeFile(t, "token: [a, b]\n")}); err != nil {
		t.Fatal(err)
	}
	if toks.String() != "a,b" {
		t.Fatalf("tokens %q, want a,b", toks.String())
	}
}

func TestPositionalBetweenFlags(t *testing.T) {
	c, server, port, _ := testCommand(t)
	pos, err := c.parse([]string{"127.0.0.1:5201", "--server", "s:1", "--remote-port", "6002"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pos) != 1 || pos[0] != "127.0.0.1:5201" || *server != "s:1" || *port != 6002 {
		t.Fatalf("pos %q server %q port %d", pos, *server, *port)
	}
}

func TestUnknownFileKeyIsAnError(t *testing.T) {
	c, _, _, _ := testCommand(t)
	_, err := c.parse([]string{"-c", writeFile(t, "sever: typo:1\n")})
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), `unknown key "sever"`) {
		t.Fatalf("got %v, want a usage error naming the key", err)
	}
}

func TestBadFlagValueFromEnv(t *testing.T) {
	t.Setenv("SLUICE_REMOTE_PORT", "lots")
	c, _, _, _ := testCommand(t)
	_, err := c.parse(nil)
	if err == nil || !strings.Contains(err.Error(), "SLUICE_REMOTE_PORT") {
		t.Fatalf("got %v, want an error naming SLUICE_REMOTE_PORT", err)
	}
}

func TestLocalAddr(t *testing.T) {
	for in, want := range map[string]string{"3000": "localhost:3000", "127.0.0.1:5201": "127.0.0.1:5201", ":80": "localhost:80", "[::1]:9": "[::1]:9"} {
		if got, err := localAddr(in); err != nil || got != want {
			t.Errorf("localAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "70000", "host", "h:port"} {
		if _, err := localAddr(in); err == nil {
			t.Errorf("localAddr(%q) accepted", in)
		}
	}
}

func TestExitCodes(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{usagef("bad"), exitUsage},
		{&control.Error{Code: control.CodeUnauthorized}, exitAuth},
		{fmt.Errorf("wrapped: %w", &control.Error{Code: control.CodeNameTaken}), exitConflict},
		{&control.Error{Code: control.CodePortTaken}, exitConflict},
		{&agent.UnreachableError{Addr: "x:1", Err: errors.New("refused")}, exitUnreachable},
		{&agent.TLSError{Addr: "x:1", Err: errors.New("unknown authority")}, exitUnreachable},
		{errors.New("other"), exitFailure},
	}
	for _, tc := range cases {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestRunUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"bogus"},
		{"tcp"},
		{"http", "3000", "--no-such-flag"},
		{"http", "3000"},                      // no server
		{"server", "--listen", "127.0.0.1:0"}, // no token
		{"server", "--listen", "0.0.0.0:0", "--token", "T"}, // public without TLS
		{"dev"},
	} {
		t.Setenv("SLUICE_SERVER", "")
		t.Setenv("SLUICE_TOKEN", "")
		var stderr bytes.Buffer
		if code := run(args, io.Discard, &stderr); code != exitUsage {
			t.Errorf("sluice %q: exit %d, want %d (stderr %q)", args, code, exitUsage, stderr.String())
		} else if stderr.Len() == 0 {
			t.Errorf("sluice %q: no message on stderr", args)
		}
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"version"}, &out, io.Discard); code != 0 || !strings.HasPrefix(out.String(), "sluice ") {
		t.Fatalf("version: exit %d, output %q", code, out.String())
	}
}
