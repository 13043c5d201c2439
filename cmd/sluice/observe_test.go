package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/internal/buildinfo"
	"github.com/sluicehq/sluice/internal/testutil"
)

// TestSmokeDevInspectorAndMetrics: sluice dev prints the inspector's link
// beside the public URL; a request through the tunnel shows in the
// inspector's API and in both halves' metrics.
func TestSmokeDevInspectorAndMetrics(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hi")
	}))
	defer app.Close()
	port := strconv.Itoa(app.Listener.Addr().(*net.TCPAddr).Port)
	metrics := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	p := startProc(t, "dev", port, "--http", "127.0.0.1:0", "--metrics", metrics, "--inspect", "127.0.0.1:0")
	m := p.waitLine(`^Forwarding (http://([a-z0-9-]+)\.localhost:(\d+)) -> `)
	pub, name, httpPort := m[1], m[2], m[3]
	insp := p.waitLine(`^inspector: (http://127\.0\.0\.1:\d+/\?secret=(\w+))$`)
	link, secret := insp[1], insp[2]

	c := viaIngress("127.0.0.1:" + httpPort)
	defer c.CloseIdleConnections()
	resp, err := c.Get(pub + "/seen-by-inspector")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	u, _ := url.Parse(link)
	req, _ := http.NewRequest("GET", "http://"+u.Host+"/api/requests", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list struct{ Requests []struct{ Path string } }
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list.Requests) != 1 || list.Requests[0].Path != "/seen-by-inspector" {
		t.Fatalf("inspector lists %+v", list.Requests)
	}

	sc := testutil.AwaitMetrics(t, "http://"+metrics+"/metrics", testutil.AllOf(
		testutil.MetricEqual(1, "sluice_edge_http_requests_total", "tunnel", name+".localhost", "class", "2xx"),
		testutil.MetricEqual(1, "sluice_agent_http_requests_total", "tunnel", name, "class", "2xx"),
	))
	if v := sc.Must(t, "sluice_build_info", "version", buildinfo.Get().Version); v != 1 {
		t.Fatalf("sluice_build_info = %v", v)
	}
	if v := sc.Must(t, "sluice_edge_sessions"); v != 1 {
		t.Fatalf("sluice_edge_sessions = %v", v)
	}
	if code := p.stop(os.Interrupt); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.stderr.String())
	}
}

// TestSmokeServerAdmin: --admin serves the listing behind a printed token.
func TestSmokeServerAdmin(t *testing.T) {
	listen := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	admin := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	srv := startProc(t, "server", "--listen", listen, "--token", "T", "--insecure", "--admin", admin)
	tok := srv.waitLine(`admin token (\w+)`)[1]
	srv.waitLine(`admin view on http://` + admin)
	ag := startProc(t, "tcp", "127.0.0.1:9", "--server", listen, "--token", "T", "--insecure")
	ag.waitLine(`^Forwarding tcp://`)
	for _, auth := range []string{"", "Bearer " + tok} {
		req, _ := http.NewRequest("GET", "http://"+admin+"/api/status", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if auth == "" {
			if resp.StatusCode != 401 {
				t.Fatalf("without the token: %d", resp.StatusCode)
			}
			continue
		}
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"kind": "tcp"`) || !strings.Contains(string(b), `"sessions": 1`) {
			t.Fatalf("admin status: %d %s", resp.StatusCode, b)
		}
	}
	for _, p := range []*proc{ag, srv} {
		if code := p.stop(syscall.SIGTERM); code != 0 {
			t.Errorf("%v exited %d; stderr:\n%s", p.cmd.Args, code, p.stderr.String())
		}
	}
}

func TestByteSizeFlag(t *testing.T) {
	for in, want := range map[string]int64{"1048576": 1 << 20, "1MiB": 1 << 20, "512KiB": 512 << 10, "64k": 64 << 10, "2MB": 2_000_000, "0": 0} {
		var b byteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("%q: %d, %v; want %d", in, b, err, want)
		}
	}
	var b byteSize
	if err := b.Set("lots"); err == nil || !strings.Contains(err.Error(), "1MiB") {
		t.Errorf("a bad size: %v", err)
	}
}
