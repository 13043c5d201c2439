package main

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestE2ENameWithHostnameRefused: --name and --hostname together are a
// usage error that names both, not a silently dropped --name.
func TestE2ENameWithHostnameRefused(t *testing.T) {
	p := startProc(t, "http", "3000", "--name", "app", "--hostname", "app.example.com", "--server", "127.0.0.1:1", "--token", "T", "--insecure")
	if code := p.wait(); code != exitUsage {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitUsage, p.stderr.String())
	}
	if s := p.stderr.String(); !strings.Contains(s, "--name and --hostname") || !strings.Contains(s, "give one") {
		t.Fatalf("stderr does not say which flags clash and what to do:\n%s", s)
	}
}

// TestE2ENoCAFileSaysSystemTrust: an agent without --ca or --pin against an
// edge with its own generated certificate is told the system's CAs do not
// trust it, and which flags fix that; no CA file is blamed.
func TestE2ENoCAFileSaysSystemTrust(t *testing.T) {
	listen := loopbackAddr(t)
	edge := startProc(t, "server", "--listen", listen, "--http", loopbackAddr(t), "--domain", "localhost", "--token", "T", "--state-dir", t.TempDir())
	edge.waitLine(`agents connect to`)
	a := startProc(t, "http", "3000", "--server", listen, "--token", "T")
	if code := a.wait(); code != exitUnreachable {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitUnreachable, a.stderr.String())
	}
	s := a.stderr.String()
	if !strings.Contains(s, "system's trusted CAs (no CA file was given)") || strings.Contains(s, "configured CA file") || !strings.Contains(s, "--ca") || !strings.Contains(s, "--pin") {
		t.Fatalf("stderr does not say the system's CAs were asked and what to pass:\n%s", s)
	}
}

// tunnelTo starts an insecure edge with domain tunnel.test and an agent for
// local (extra flags appended), and returns the public URL and the ingress.
func tunnelTo(t *testing.T, local string, extra ...string) (url, ingress string, agent *proc) {
	t.Helper()
	listen, httpAddr := loopbackAddr(t), loopbackAddr(t)
	edge := startProc(t, "server", "--listen", listen, "--http", httpAddr, "--domain", "tunnel.test", "--token", "T", "--insecure")
	edge.waitLine(`agents connect to`)
	args := append([]string{"http", local, "--server", listen, "--token", "T", "--insecure", "--name", "app"}, extra...)
	agent = startProc(t, args...)
	url = agent.waitLine(`^Forwarding (http://app\.tunnel\.test:\d+) -> `)[1]
	return url, httpAddr, agent
}

// TestE2EUpstreamCertNotTrustedNamesTheFlags: a local HTTPS service whose
// certificate the agent does not trust gets a 502 that says so and names
// --upstream-ca and --upstream-insecure, not "start the service".
func TestE2EUpstreamCertNotTrustedNamesTheFlags(t *testing.T) {
	app := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "secure app") }))
	app.Config.ErrorLog = log.New(io.Discard, "", 0)
	defer app.Close()
	url, ingress, agent := tunnelTo(t, "https://"+app.Listener.Addr().String())
	c := viaIngress(ingress)
	defer c.CloseIdleConnections()
	resp, err := c.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(page, "--upstream-ca") || !strings.Contains(page, "--upstream-insecure") || strings.Contains(page, "Start the service") {
		t.Fatalf("%d, page:\n%s", resp.StatusCode, page)
	}
	agent.waitStderr(`certificate not trusted.*--upstream-ca`, 5*time.Second)
	// With --upstream-insecure the same service answers.
	url2, ingress2, _ := tunnelTo(t, "https://"+app.Listener.Addr().String(), "--upstream-insecure")
	if got, err := get(ingress2, url2+"/"); err != nil || got != "secure app" {
		t.Fatalf("with --upstream-insecure: %q, %v", got, err)
	}
}

// TestE2ECookieDomainFollowsPublicHost: a local app that sets cookies for
// its own host (Domain=localhost) behind a public domain: a real cookie jar
// keeps them for the public host and sends them back; a cookie for another
// domain is passed as written.
func TestE2ECookieDomainFollowsPublicHost(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" {
			w.Header().Add("Set-Cookie", "session=abc; Domain=localhost; Path=/; HttpOnly")
			w.Header().Add("Set-Cookie", "pref=dark; Path=/; domain=.127.0.0.1")
			w.Header().Add("Set-Cookie", "other=x; Domain=example.org; Path=/")
			w.Header().Add("Set-Cookie", "plain=1; Path=/")
			return
		}
		var names []string
		for _, c := range r.Cookies() {
			names = append(names, c.Name+"="+c.Value)
		}
		io.WriteString(w, strings.Join(names, " "))
	}))
	defer app.Close()
	port := strconv.Itoa(app.Listener.Addr().(*net.TCPAddr).Port)
	url, ingress, _ := tunnelTo(t, port)
	jar, _ := cookiejar.New(nil)
	c := viaIngress(ingress)
	c.Jar = jar
	defer c.CloseIdleConnections()
	resp, err := c.Get(url + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	joined := strings.Join(resp.Header["Set-Cookie"], "\n")
	if !strings.Contains(joined, "session=abc; Domain=app.tunnel.test; Path=/; HttpOnly") || !strings.Contains(joined, "pref=dark; Path=/; Domain=app.tunnel.test") || !strings.Contains(joined, "other=x; Domain=example.org") {
		t.Fatalf("Set-Cookie as the client got them:\n%s", joined)
	}
	resp, err = c.Get(url + "/whoami")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"session=abc", "pref=dark", "plain=1"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("the app got cookies %q back, want %s among them", got, want)
		}
	}
}
