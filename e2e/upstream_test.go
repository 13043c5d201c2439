package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
)

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestLocalRedirectsPointAtThePublicURL(t *testing.T) {
	var local string
	local = localHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		port := local[strings.LastIndexByte(local, ':')+1:]
		w.Header().Set("Location", "http://localhost:"+port+"/next?x=1")
		w.Header().Set("Content-Location", "http://"+local+"/doc")
		w.Header().Set("Refresh", "5; url=http://127.0.0.1:"+port+"/later")
		w.Header().Add("Link", "<http://localhost:"+port+"/untouched>")
		w.WriteHeader(http.StatusFound)
	}))
	srv := startEdge(t, nil)
	startAgent(t, srv, agent.Tunnel{Kind: control.KindHTTP, Name: "r", Local: local, LogRequests: true})
	public := fmt.Sprintf("http://r.localhost:%d", srv.HTTPAddr().(*net.TCPAddr).Port)
	resp, _ := get(t, viaEdge(t, srv.HTTPAddr().String()), public+"/start")
	for k, want := range map[string]string{
		"Location":         public + "/next?x=1",
		"Content-Location": public + "/doc",
		"Refresh":          "5; url=" + public + "/later",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	// A redirect elsewhere is left alone.
	if !strings.Contains(resp.Header.Get("Link"), "localhost:") {
		t.Errorf("Link header was changed: %q", resp.Header.Get("Link"))
	}
}

func TestHostHeaderModes(t *testing.T) {
	local := localHTTP(t, headerEcho())
	srv := startEdge(t, nil)
	port := srv.HTTPAddr().(*net.TCPAddr).Port
	startAgent(t, srv,
		agent.Tunnel{Kind: control.KindHTTP, Name: "keep", Local: local, LogRequests: true},
		agent.Tunnel{Kind: control.KindHTTP, Name: "local", Local: local, HostHeader: agent.HostRewrite},
		agent.Tunnel{Kind: control.KindHTTP, Name: "lit", Local: local, HostHeader: "app.internal:8000"})
	c := viaEdge(t, srv.HTTPAddr().String())
	for name, want := range map[string]string{
		"keep":  fmt.Sprintf("keep.localhost:%d", port),
		"local": local,
		"lit":   "app.internal:8000",
	} {
		_, body := get(t, c, fmt.Sprintf("http://%s.localhost:%d/", name, port))
		if !strings.Contains(body, "Host="+want+"\n") {
			t.Errorf("tunnel %s: local service saw\n%s\nwant Host=%s", name, body, want)
		}
	}
}

func TestHTTPSUpstream(t *testing.T) {
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls local %s", r.Proto)
	}))
	ts.EnableHTTP2 = true
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted case fails its handshake on purpose
	ts.StartTLS()
	t.Cleanup(ts.Close)
	roots := x509.NewCertPool()
	roots.AddCert(ts.Certificate())
	srv := startEdge(t, nil)
	startAgent(t, srv,
		agent.Tunnel{Kind: control.KindHTTP, Name: "ca", Local: ts.Listener.Addr().String(), UpstreamTLS: &tls.Config{RootCAs: roots}},
		agent.Tunnel{Kind: control.KindHTTP, Name: "skip", Local: ts.Listener.Addr().String(), UpstreamTLS: &tls.Config{InsecureSkipVerify: true}},
		agent.Tunnel{Kind: control.KindHTTP, Name: "h2", Local: ts.Listener.Addr().String(), UpstreamTLS: &tls.Config{RootCAs: roots}, UpstreamProtocol: agent.UpstreamHTTP2},
		agent.Tunnel{Kind: control.KindHTTP, Name: "untrusted", Local: ts.Listener.Addr().String(), UpstreamTLS: &tls.Config{}})
	c := viaEdge(t, srv.HTTPAddr().String())
	port := srv.HTTPAddr().(*net.TCPAddr).Port
	for name, want := range map[string]string{"ca": "tls local HTTP/1.1", "skip": "tls local HTTP/1.1", "h2": "tls local HTTP/2.0"} {
		resp, body := get(t, c, fmt.Sprintf("http://%s.localhost:%d/", name, port))
		if resp.StatusCode != 200 || body != want {
			t.Errorf("tunnel %s: %s %q, want 200 %q", name, resp.Status, body, want)
		}
	}
	resp, body := get(t, c, fmt.Sprintf("http://untrusted.localhost:%d/", port))
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "certificate") {
		t.Errorf("an https upstream with an unknown certificate: %s %q, want a 502 that names the certificate", resp.Status, body)
	}
}
