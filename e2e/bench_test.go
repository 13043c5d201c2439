package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/server"
)

// BenchmarkHTTPGet sends small keep-alive GETs through an edge and an agent
// to a local service, all in this process (client included), from
// GOMAXPROCS*8 goroutines; allocs/op counts every side of one request.
// "logged" parses on the agent and logs nothing (discard logger); "piped"
// is --log-requests=false; "piped-console" is piped with the edge's admin
// address on, so the edge meters bytes and responses for its console.
func BenchmarkHTTPGet(b *testing.B) {
	body := []byte("hello, sluice\n")
	for _, mode := range []struct {
		name    string
		parsed  bool
		console bool
	}{{"logged", true, false}, {"piped", false, false}, {"piped-console", false, true}} {
		b.Run(mode.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			ls := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })}
			go ls.Serve(ln)
			defer ls.Close()
			srv, stop := benchEdge(b, mode.console)
			defer stop()
			astop := benchAgent(b, srv, agent.Tunnel{Kind: control.KindHTTP, Name: "bench", Local: ln.Addr().String(), LogRequests: mode.parsed})
			defer astop()
			edge := srv.HTTPAddr().String()
			tr := &http.Transport{MaxIdleConnsPerHost: 1024, DisableCompression: true}
			defer tr.CloseIdleConnections()
			url := fmt.Sprintf("http://%s/", edge)
			b.SetParallelism(8)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("GET", url, nil)
					req.Host = "bench.localhost"
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
		})
	}
}

func benchEdge(b *testing.B, console bool) (*server.Server, func()) {
	cfg := server.Config{Listen: "127.0.0.1:0", HTTP: "127.0.0.1:0", Domain: "localhost", Tokens: []string{token}}
	if console {
		cfg.Admin, cfg.AdminToken = "127.0.0.1:0", "admin"
	}
	srv, err := server.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	ctx, cancel := contextWithCancel()
	go func() { done <- srv.Serve(ctx) }()
	return srv, func() { cancel(); <-done }
}

func benchAgent(b *testing.B, srv *server.Server, tun agent.Tunnel) func() {
	up := make(chan struct{}, 1)
	a, err := agent.New(agent.Config{Server: srv.Addr().String(), Token: token, Tunnels: []agent.Tunnel{tun},
		OnAssigned: func(int, control.Assigned) {
			select {
			case up <- struct{}{}:
			default:
			}
		}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := contextWithCancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	<-up
	return func() { cancel(); <-done }
}
