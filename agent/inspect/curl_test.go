package inspect

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// shellArgs runs cmd in sh with curl replaced by a function that prints its
// arguments, so the test sees exactly what the shell would hand to curl.
func shellArgs(t *testing.T, cmd string) []string {
	t.Helper()
	out, err := exec.Command("sh", "-c", `curl() { printf '%s\0' "$@"; }; `+cmd).Output()
	if err != nil {
		t.Fatalf("sh -c %q: %v", cmd, err)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
}

// TestCurlArgumentsAreData feeds curlCommand captured bytes that would be
// options, file reads or shell syntax if they escaped their quotes, and
// checks the argument list the shell builds from the command.
func TestCurlArgumentsAreData(t *testing.T) {
	hostile := []string{"@/etc/hostname", "@-", "-", "--output /tmp/x", "-K/etc/passwd", `it's "q" $(touch pwned) ` + "`touch pwned`", "line1\nline2\r\n'\n", "{a,b}[1-2]"}
	for _, body := range hostile {
		e := &Entry{Method: "POST", Host: "app.localhost:8080", URI: "/p", ReqHeader: http.Header{"X-Body": {body}}, ReqBody: []byte(body), ReqSize: int64(len(body))}
		args := shellArgs(t, curlCommand(e, true))
		want := []string{"--globoff", "-X", "POST", "http://app.localhost:8080/p"}
		if !strings.ContainsAny(body, "\r\n") {
			want = append(want, "-H", "X-Body: "+body)
		}
		want = append(want, "--data-raw", body)
		if fmt.Sprint(args) != fmt.Sprint(want) || len(args) != len(want) {
			t.Errorf("body and header %q: curl gets %q, want %q", body, args, want)
		}
	}
	// A path that would glob, and a header curl would read as a file.
	e := &Entry{Method: "GET", Host: "app.localhost:8080", URI: "/[1-9]/{a,b}/@x/-o/'x'\n", ReqHeader: http.Header{"@file": {"x"}, "X-Ok": {"1"}}}
	args := shellArgs(t, curlCommand(e, true))
	want := []string{"--globoff", "http://app.localhost:8080/[1-9]/{a,b}/@x/-o/'x'\n", "-H", "X-Ok: 1"}
	if fmt.Sprint(args) != fmt.Sprint(want) || len(args) != len(want) {
		t.Errorf("path and header: curl gets %q, want %q", args, want)
	}
	if c := curlCommand(e, true); !strings.Contains(c, `# left out, not valid in a header: "@file"`) {
		t.Errorf("the left-out header is not noted: %s", c)
	}
	// Binary bodies (a NUL cannot ride in a shell argument) are left to the user.
	e = &Entry{Method: "POST", Host: "h", URI: "/", ReqHeader: http.Header{}, ReqBody: []byte("a\x00b"), ReqSize: 3}
	if c := curlCommand(e, true); !strings.HasSuffix(c, "--data-binary @BODY_FILE  # binary body: save it to a file first") {
		t.Errorf("binary body: %s", c)
	}
}

// TestCopyAsCurlWithRealCurl captures hostile requests sent over real
// connections, then runs each "Copy as curl" command with the real curl
// against a local server: what arrives is exactly what was captured, no
// local file or standard input is read, and nothing is written.
func TestCopyAsCurlWithRealCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("curl is not installed: .ci/run installs it")
		}
		t.Skip("curl is not installed")
	}
	f := newFixture(t, Config{})
	capture := httptest.NewServer(f.h)
	defer capture.Close()

	type got struct {
		method, uri, body string
		header            http.Header
	}
	var (
		mu       sync.Mutex
		received []got
	)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		received = append(received, got{r.Method, r.RequestURI, string(b), r.Header.Clone()})
		mu.Unlock()
	}))
	defer target.Close()

	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(secret, []byte("SECRET-FILE-CONTENT"), 0o600); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir() // where the command runs: an -o would write here
	cases := []struct{ method, uri, body string }{
		{"POST", "/hook", "@" + secret},
		{"POST", "/hook", "@-"},
		{"PUT", "/hook", "-"},
		{"POST", "/hook", "-o " + filepath.Join(work, "pwned") + " --data-binary @" + secret},
		{"POST", "/hook", "it's \"quoted\" $(touch pwned) `touch pwned2`\nline2\r\n\n'"},
		{"POST", "/@" + secret + "/-o/'q'/\"d\"/$(id)/[1-2]/{a,b}?x=@" + secret + "&y=-K", "a=1"},
		{"GET", "/-K" + secret, ""},
	}
	headers := [][2]string{{"X-At", "@" + secret}, {"X-Dash", "-o pwned"}, {"X-Quote", `it's "q" $(touch pwned) ` + "`id`"}}
	for i, tc := range cases {
		// A raw request, so every byte of the path arrives as written.
		c, err := net.Dial("tcp", capture.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		var req bytes.Buffer
		fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n", tc.method, tc.uri, target.Listener.Addr(), len(tc.body))
		for _, h := range headers {
			fmt.Fprintf(&req, "%s: %s\r\n", h[0], h[1])
		}
		req.WriteString("\r\n" + tc.body)
		c.Write(req.Bytes())
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		resp.Body.Close()
		c.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("case %d: the capture side answered %s", i, resp.Status)
		}
		list := f.list(t, "")
		cmdline := f.detail(t, list[0].ID, "?reveal=1").Curl

		mu.Lock()
		before := len(received)
		mu.Unlock()
		cmd := exec.Command("sh", "-c", cmdline+" --silent --show-error --max-time 10")
		cmd.Dir = work
		cmd.Stdin = strings.NewReader("STDIN-CONTENT")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("case %d: %s: %v\n%s", i, cmdline, err, out)
		}
		mu.Lock()
		if len(received) != before+1 {
			mu.Unlock()
			t.Fatalf("case %d: the command made %d requests, want 1: %s", i, len(received)-before, cmdline)
		}
		r := received[before]
		mu.Unlock()
		// The capture keeps the URI as Go's url.URL writes it (quotes,
		// brackets and braces escaped); unescaped it is what was sent.
		sentURL, _ := url.ParseRequestURI(tc.uri)
		gotURL, err := url.ParseRequestURI(r.uri)
		if err != nil || r.method != tc.method || gotURL.Path != sentURL.Path || gotURL.RawQuery != sentURL.RawQuery || r.body != tc.body {
			t.Errorf("case %d: %s\nsent     %s %q body %q\narrived  %s %q body %q", i, cmdline, tc.method, tc.uri, tc.body, r.method, r.uri, r.body)
		}
		for _, h := range headers {
			if v := r.header.Get(h[0]); v != h[1] {
				t.Errorf("case %d: header %s arrived as %q, want %q", i, h[0], v, h[1])
			}
		}
		if strings.Contains(r.body, "SECRET-FILE-CONTENT") || strings.Contains(r.body, "STDIN-CONTENT") {
			t.Errorf("case %d: the command read a local file or standard input: %q", i, r.body)
		}
	}
	if left, _ := os.ReadDir(work); len(left) > 0 {
		t.Errorf("running the commands wrote %d files (%s...)", len(left), left[0].Name())
	}
}
