package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/proxyproto"
	"github.com/sluicehq/sluice/server"
	"github.com/sluicehq/sluice/transport"
)

// curlErr runs curl like curl does, but returns its failure instead of
// failing the test.
func curlErr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, append([]string{"-sS", "--max-time", "20"}, args...)...).CombinedOutput()
	return string(out), err
}

func forwardedFor() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "xff=%s", r.Header.Get("X-Forwarded-For"))
	})
}

// TestCurlHAProxyProtocolThroughTrustedIngress: curl --haproxy-protocol
// plays the load balancer (it sends a v1 header naming itself). From a
// trusted address the edge takes the header, on the plain and the TLS
// ingress; the same address without a header is refused, as is an
// untrusted address with one.
func TestCurlHAProxyProtocolThroughTrustedIngress(t *testing.T) {
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
	edge := func(trusted string) *server.Server {
		srv := startEdge(t, func(c *server.Config) {
			c.Domain = "sluice.test"
			c.HTTPS = "127.0.0.1:0"
			c.HTTPSCertFile, c.HTTPSKeyFile = certFile, keyFile
			c.HTTPPlain = true
			c.AcceptProxyProtocol = []netip.Prefix{netip.MustParsePrefix(trusted)}
		})
		startAgent(t, srv, agent.Tunnel{Kind: control.KindHTTP, Name: "web", Local: localHTTP(t, forwardedFor()), LogRequests: true})
		return srv
	}
	urls := func(srv *server.Server) map[string][]string {
		hp, sp := srv.HTTPAddr().(*net.TCPAddr).Port, srv.HTTPSAddr().(*net.TCPAddr).Port
		return map[string][]string{
			"http":  {"--resolve", fmt.Sprintf("web.sluice.test:%d:127.0.0.1", hp), fmt.Sprintf("http://web.sluice.test:%d/", hp)},
			"https": {"--cacert", caFile, "--resolve", fmt.Sprintf("web.sluice.test:%d:127.0.0.1", sp), fmt.Sprintf("https://web.sluice.test:%d/", sp)},
		}
	}

	trusted := urls(edge("127.0.0.1/32"))
	for name, args := range trusted {
		if out := curl(t, append([]string{"--haproxy-protocol"}, args...)...); out != "xff=127.0.0.1" {
			t.Errorf("%s with a header from a trusted balancer: %q, want the client it named", name, out)
		}
		if out, err := curlErr(t, args...); err == nil {
			t.Errorf("%s without a header from a trusted balancer: answered %q, want the connection refused", name, out)
		}
	}
	untrusted := urls(edge("10.0.0.0/8"))
	for name, args := range untrusted {
		if out, err := curlErr(t, append([]string{"--haproxy-protocol"}, args...)...); err == nil {
			t.Errorf("%s with a header from an untrusted client: answered %q, want the connection refused", name, out)
		}
		if out := curl(t, args...); out != "xff=127.0.0.1" {
			t.Errorf("%s without a header from an untrusted client: %q", name, out)
		}
	}
}

// TestCurlThroughTCPTunnelWithProxyProtocol: curl reaches an HTTP service
// behind `tcp --proxy-protocol v2`, whose listener reads the agent's header:
// the service sees curl's address, not the agent's.
func TestCurlThroughTCPTunnelWithProxyProtocol(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "remote=%s", r.RemoteAddr)
	})}
	go svc.Serve(&proxyproto.Listener{Listener: ln, Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	t.Cleanup(func() { svc.Close() })
	srv := startEdge(t, nil)
	as := startAgent(t, srv, agent.Tunnel{Kind: control.KindTCP, Local: ln.Addr().String(), ProxyProtocol: "v2"})
	url := "http://" + strings.TrimPrefix(as[0].URL, "tcp://") + "/"
	// curl reports the local port it used; the service must name the same.
	out := curl(t, "-w", " %{local_ip}:%{local_port}", url)
	got, want, _ := strings.Cut(out, " ")
	if got != "remote="+want {
		t.Fatalf("service saw %q, want remote=%s (curl's own address)", got, want)
	}
}
