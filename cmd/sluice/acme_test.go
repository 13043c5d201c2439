package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testutil"
)

// TestE2EACMEPrivateCARoot: an edge pointed at a private ACME CA (a real
// Pebble on loopback, whose directory has a certificate no system trusts)
// obtains a certificate with --acme-ca-root and logs it as issued; without
// the flag it says why it could not.
func TestE2EACMEPrivateCARoot(t *testing.T) {
	p := testutil.StartPebble(t)
	app := appServer(t, "over acme")
	for _, withRoot := range []bool{true, false} {
		listen, httpAddr, httpsAddr := loopbackAddr(t), loopbackAddr(t), loopbackAddr(t)
		args := []string{"server", "--listen", listen, "--http", httpAddr, "--https", httpsAddr, "--domain", "sluice.test",
			"--token", "T", "--insecure", "--acme-ca", p.Directory, "--state-dir", t.TempDir()}
		if withRoot {
			args = append(args, "--acme-ca-root", p.APIRootFile)
		}
		edge := startProc(t, args...)
		edge.waitLine(`agents connect to`)
		startProc(t, "http", app, "--server", listen, "--token", "T", "--insecure", "--name", "web").waitLine(`^Forwarding https?://web\.sluice\.test`)
		c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, httpsAddr)
			},
			TLSClientConfig: &tls.Config{RootCAs: p.Roots},
		}}
		resp, err := c.Get("https://web.sluice.test/")
		if !withRoot {
			if err == nil {
				resp.Body.Close()
				t.Fatal("without --acme-ca-root the edge still got a certificate from a CA nobody trusts")
			}
			edge.waitStderr(`obtaining a certificate failed.*(unknown authority|not trusted|x509)`, 10*time.Second)
			c.CloseIdleConnections()
			continue
		}
		if err != nil {
			t.Fatalf("HTTPS through an ACME certificate: %v; edge stderr:\n%s", err, edge.stderr.String())
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.CloseIdleConnections()
		if string(body) != "over acme" {
			t.Fatalf("HTTPS answered %q", body)
		}
		edge.waitStderr(`certificate issued.*name=web\.sluice\.test.*not_after=`, 10*time.Second)
		if strings.Contains(edge.stderr.String(), "certificate renewed") {
			t.Fatalf("a first certificate was logged as renewed:\n%s", edge.stderr.String())
		}
	}
}
