package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
)

// grpcTo is a gRPC client whose calls for host go to the edge's plain
// (h2c) ingress.
func grpcTo(t *testing.T, edgeAddr, host string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+host,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", edgeAddr)
		}),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// TestGRPCClientsGetAGRPCStatusFromTheEdge: a gRPC call the edge answers
// itself (no tunnel for the host) carries a gRPC status the client can
// read, NotFound with the edge's words, not an HTML page that grpc-go
// reports as Unimplemented.
func TestGRPCClientsGetAGRPCStatusFromTheEdge(t *testing.T) {
	srv := startEdge(t, nil)
	edgeAddr := srv.HTTPAddr().String()
	cc := grpcTo(t, edgeAddr, fmt.Sprintf("nobody.localhost:%d", srv.HTTPAddr().(*net.TCPAddr).Port))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	in, out := []byte("ping"), []byte(nil)
	err := cc.Invoke(ctx, "/sluice.test.Echo/Echo", &in, &out)
	st, _ := status.FromError(err)
	if st.Code() != codes.NotFound || !strings.Contains(st.Message(), "No tunnel is registered for nobody.localhost") {
		t.Fatalf("a call to an unknown host: %v, want NotFound naming the host", err)
	}
}

// TestReservedPrefixNeverReachesTheApp: paths under /_sluice/ that the edge
// does not serve are answered 404 by the edge, and the app never sees them.
func TestReservedPrefixNeverReachesTheApp(t *testing.T) {
	var reached atomic.Int32
	app := localHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		io.WriteString(w, "app")
	}))
	srv := startEdge(t, nil)
	as := startAgent(t, srv, agent.Tunnel{Kind: control.KindHTTP, Name: "res", Local: app})
	hc := viaEdge(t, srv.HTTPAddr().String())
	for _, path := range []string{"/_sluice/x", "/_sluice/", "/_sluice/healthz/../x"} {
		resp, err := hc.Get(as[0].URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if path == "/_sluice/healthz/../x" {
			continue // cleaned by the client to /_sluice/x; checked by the count below
		}
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "reserved for the sluice edge") {
			t.Fatalf("GET %s: %d %q, want the edge's 404", path, resp.StatusCode, body)
		}
	}
	resp, err := hc.Get(as[0].URL + "/_sluicex")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || reached.Load() != 1 {
		t.Fatalf("a path that only starts like the prefix: %d, app reached %d times, want 200 and once", resp.StatusCode, reached.Load())
	}
}
