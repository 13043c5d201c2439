package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/edgetest"
	"github.com/sluicehq/sluice/policy"
	"github.com/sluicehq/sluice/server"
)

// BenchmarkHTTPGet sends small keep-alive GETs through an edge and an agent
// to a local service, all in this process (client included), from
// GOMAXPROCS*8 goroutines; allocs/op counts every side of one request.
// "logged" parses on the agent and logs nothing (discard logger); "piped"
// is --log-requests=false; "piped-console" is piped with the edge's admin
// address on, so the edge meters bytes and responses for its console.
func BenchmarkHTTPGet(b *testing.B) {
	for _, mode := range []struct {
		name    string
		parsed  bool
		console bool
	}{{"logged", true, false}, {"piped", false, false}, {"piped-console", false, true}} {
		b.Run(mode.name, func(b *testing.B) {
			benchGet(b, mode.console, agent.Tunnel{Kind: control.KindHTTP, Name: "bench", LogRequests: mode.parsed}, nil)
		})
	}
}

// BenchmarkHTTPGetPolicy is BenchmarkHTTPGet's piped case with and without
// a traffic policy on the tunnel: an IP allow rule, basic auth and one CEL
// condition, all passing, so both cases do the same work past the edge.
// "on" should stay within 5% of "off" (run them interleaved, see
// docs/POLICY.md).
func BenchmarkHTTPGetPolicy(b *testing.B) {
	spec, err := policy.Parse([]byte(`
on_tcp_connect:
  - name: loopback only
    actions: [{type: restrict-ips, config: {allow: [127.0.0.0/8, "::1"]}}]
on_http_request:
  - name: team
    expressions: ["!req.path.startsWith('/public')"]
    actions: [{type: basic-auth, config: {credentials: ["bench:bench-password"]}}]
`), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []struct {
		name string
		spec *policy.Spec
	}{{"off", nil}, {"on", spec}} {
		b.Run(mode.name, func(b *testing.B) {
			benchGet(b, false, agent.Tunnel{Kind: control.KindHTTP, Name: "bench", Policy: mode.spec},
				func(r *http.Request) { r.SetBasicAuth("bench", "bench-password") })
		})
	}
}

// benchGet sends the GETs of BenchmarkHTTPGet through a fresh edge (with
// its admin address on when console is set) and an agent with tun (its
// Local filled in); mod, when set, changes each request.
func benchGet(b *testing.B, console bool, tun agent.Tunnel, mod func(*http.Request)) {
	body := []byte("hello, sluice\n")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ls := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })}
	go ls.Serve(ln)
	defer ls.Close()
	srv, stop := benchEdge(b, console)
	defer stop()
	tun.Local = ln.Addr().String()
	astop := benchAgent(b, srv, tun)
	defer astop()
	tr := &http.Transport{MaxIdleConnsPerHost: 1024, DisableCompression: true}
	defer tr.CloseIdleConnections()
	url := fmt.Sprintf("http://%s/", srv.HTTPAddr())
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", url, nil)
			req.Host = "bench.localhost"
			if mod != nil {
				mod(req)
			}
			resp, err := tr.RoundTrip(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

func benchEdge(b *testing.B, console bool) (*server.Server, func()) {
	cfg := server.Config{Listen: edgetest.Loopback, HTTP: edgetest.Loopback, Domain: "localhost", Tokens: []string{token}}
	if console {
		cfg.Admin, cfg.AdminToken = "127.0.0.1:0", "admin"
	}
	e := edgetest.Start(b, server.New, cfg)
	return e.S, func() { e.Stop() }
}

func benchAgent(b *testing.B, srv *server.Server, tun agent.Tunnel) func() {
	as := edgetest.NewAssignments()
	a, err := agent.New(agent.Config{Server: srv.Addr().String(), Token: token, Tunnels: []agent.Tunnel{tun}, OnAssigned: as.Hook})
	if err != nil {
		b.Fatal(err)
	}
	_, stop := edgetest.RunAgent(b, a, as, 1)
	return stop
}
