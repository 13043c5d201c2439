package agent_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/server"
)

// A Go program reachable through sluice with no local port: public requests
// arrive from the Listener. The edge runs in-process here only so that the
// example is self-contained; normally it is `sluice server` on a public host.
func ExampleListen() {
	edge, err := server.New(server.Config{Listen: "127.0.0.1:0", HTTP: "127.0.0.1:0", Domain: "localhost", Tokens: []string{"secret"}})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	edgeDone := make(chan error)
	go func() { edgeDone <- edge.Serve(ctx) }()
	defer func() { cancel(); <-edgeDone }()

	ln, err := agent.Listen(ctx, agent.Config{
		Server:  edge.Addr().String(),
		Token:   "secret",
		TLS:     nil, // plain TCP to a loopback edge; use transport.ClientTLS for a real one
		Tunnels: []agent.Tunnel{{Kind: control.KindHTTP, Name: "example"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello through sluice")
	}))

	// A public client: example.localhost resolves to the edge's HTTP port.
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return net.Dial("tcp", edge.HTTPAddr().String())
		},
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(ln.URL())
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(strings.HasPrefix(ln.URL(), "http://example.localhost:"))
	fmt.Print(string(body))
	// Output:
	// true
	// hello through sluice
}
