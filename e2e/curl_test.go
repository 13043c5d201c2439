package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/server"
	"github.com/sluicehq/sluice/transport"
)

// curl runs the real curl and returns its stdout. Tests using it are
// skipped only where curl is missing (CI installs it).
func curl(t *testing.T, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, append([]string{"-sS", "--max-time", "20"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func protoEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hi from %s", r.URL.Path)
	})
}

func TestCurlHTTP2PriorKnowledgeOnThePlainIngress(t *testing.T) {
	srv := startEdge(t, nil)
	startAgent(t, srv, agent.Tunnel{Kind: control.KindHTTP, Name: "app", Local: localHTTP(t, protoEcho()), LogRequests: true})
	port := srv.HTTPAddr().(*net.TCPAddr).Port
	url := fmt.Sprintf("http://app.localhost:%d/h2c", port)
	out := curl(t, "--http2-prior-knowledge", "--resolve", fmt.Sprintf("app.localhost:%d:127.0.0.1", port), "-w", " %{http_version} %{http_code}", url)
	if out != "hi from /h2c 2 200" {
		t.Fatalf("curl --http2-prior-knowledge got %q, want the tunnel's answer over HTTP/2", out)
	}
	// HTTP/1.1 on the same port still works.
	out = curl(t, "--http1.1", "--resolve", fmt.Sprintf("app.localhost:%d:127.0.0.1", port), "-w", " %{http_version}", url)
	if out != "hi from /h2c 1.1" {
		t.Fatalf("curl --http1.1 got %q", out)
	}
}

func TestCurlHTTP2OverTLSWithAStaticCertificate(t *testing.T) {
	ca, err := transport.NewCA("sluice e2e CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("*.sluice.test")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile, err := transport.WritePEMFiles(dir, "wildcard", cert)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := ca.WriteCAFile(caFile); err != nil {
		t.Fatal(err)
	}
	srv := startEdge(t, func(c *server.Config) {
		c.Domain = "sluice.test"
		c.HTTPS = "127.0.0.1:0"
		c.HTTPSCertFile, c.HTTPSKeyFile = certFile, keyFile
		c.HTTPPlain = true
	})
	startAgent(t, srv, agent.Tunnel{Kind: control.KindHTTP, Name: "web", Local: localHTTP(t, protoEcho()), LogRequests: true})
	port := srv.HTTPSAddr().(*net.TCPAddr).Port
	resolve := fmt.Sprintf("web.sluice.test:%d:127.0.0.1", port)
	out := curl(t, "--http2", "--cacert", caFile, "--resolve", resolve, "-w", " %{http_version}", fmt.Sprintf("https://web.sluice.test:%d/tls", port))
	if out != "hi from /tls 2" {
		t.Fatalf("curl --http2 over TLS got %q, want h2 by ALPN", out)
	}
	// --http-plain: the plain port serves the tunnel instead of redirecting.
	hp := srv.HTTPAddr().(*net.TCPAddr).Port
	out = curl(t, "--resolve", fmt.Sprintf("web.sluice.test:%d:127.0.0.1", hp), "-w", " %{http_code}", fmt.Sprintf("http://web.sluice.test:%d/plain", hp))
	if out != "hi from /plain 200" {
		t.Fatalf("plain HTTP with HTTPPlain got %q", out)
	}
}
