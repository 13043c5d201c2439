package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/server"
)

// rawCodec carries messages as plain bytes, so the test service needs no
// generated protobuf code; the framing, headers and trailers on the wire are
// gRPC's own.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "raw" }

// echoService implements sluice.test.Echo: unary Echo and Sleep, server
// streaming Count, client streaming Sum, bidirectional Chat.
type echoService struct {
	sleeping chan struct{} // Sleep started
	woke     chan error    // Sleep's context ended, with why
}

var echoDesc = grpc.ServiceDesc{
	ServiceName: "sluice.test.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Echo", Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			if string(in) == "deny" {
				return nil, status.Error(codes.PermissionDenied, "denied on purpose")
			}
			grpc.SetHeader(ctx, metadata.Pairs("x-head", "h1"))
			grpc.SetTrailer(ctx, metadata.Pairs("x-trail", "t1"))
			out := append([]byte("echo:"), in...)
			return &out, nil
		}},
		{MethodName: "Sleep", Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			s := srv.(*echoService)
			s.sleeping <- struct{}{}
			<-ctx.Done()
			s.woke <- ctx.Err()
			return nil, status.FromContextError(ctx.Err()).Err()
		}},
	},
	Streams: []grpc.StreamDesc{
		{StreamName: "Count", ServerStreams: true, Handler: func(_ any, st grpc.ServerStream) error {
			var in []byte
			if err := st.RecvMsg(&in); err != nil {
				return err
			}
			n, _ := strconv.Atoi(string(in))
			for i := range n {
				out := []byte(strconv.Itoa(i))
				if err := st.SendMsg(&out); err != nil {
					return err
				}
			}
			st.SetTrailer(metadata.Pairs("x-count", strconv.Itoa(n)))
			return nil
		}},
		{StreamName: "Sum", ClientStreams: true, Handler: func(_ any, st grpc.ServerStream) error {
			total := 0
			for {
				var in []byte
				err := st.RecvMsg(&in)
				if errors.Is(err, io.EOF) {
					out := []byte(strconv.Itoa(total))
					return st.SendMsg(&out)
				}
				if err != nil {
					return err
				}
				total += len(in)
			}
		}},
		{StreamName: "Chat", ServerStreams: true, ClientStreams: true, Handler: func(_ any, st grpc.ServerStream) error {
			for {
				var in []byte
				err := st.RecvMsg(&in)
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
				out := append([]byte("re:"), in...)
				if err := st.SendMsg(&out); err != nil {
					return err
				}
			}
		}},
	},
}

// grpcThroughTunnel starts a gRPC service, an edge, and an agent with
// --upstream-protocol http2, and returns a client connection that reaches the
// service through the edge's plain (h2c) ingress.
func grpcThroughTunnel(t *testing.T) (*grpc.ClientConn, *echoService) {
	t.Helper()
	return grpcThroughTunnelWith(t, nil)
}

// grpcThroughTunnelWith is grpcThroughTunnel with the edge's config changed
// by mod.
func grpcThroughTunnelWith(t *testing.T, mod func(*server.Config)) (*grpc.ClientConn, *echoService) {
	t.Helper()
	svc := &echoService{sleeping: make(chan struct{}, 1), woke: make(chan error, 1)}
	gs := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}))
	gs.RegisterService(&echoDesc, svc)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)

	srv := startEdge(t, mod)
	startAgent(t, srv, agent.Tunnel{Kind: control.KindHTTP, Name: "grpc", Local: ln.Addr().String(), LogRequests: true, UpstreamProtocol: agent.UpstreamHTTP2})
	return grpcTo(t, srv.HTTPAddr().String(), fmt.Sprintf("grpc.localhost:%d", srv.HTTPAddr().(*net.TCPAddr).Port)), svc
}

func TestGRPCUnaryWithHeadersTrailersAndStatus(t *testing.T) {
	cc, _ := grpcThroughTunnel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	in, out := []byte("ping"), []byte(nil)
	var head, trail metadata.MD
	if err := cc.Invoke(ctx, "/sluice.test.Echo/Echo", &in, &out, grpc.Header(&head), grpc.Trailer(&trail)); err != nil {
		t.Fatalf("unary call through the tunnel: %v", err)
	}
	if string(out) != "echo:ping" {
		t.Fatalf("reply %q", out)
	}
	if got := head.Get("x-head"); len(got) != 1 || got[0] != "h1" {
		t.Fatalf("header metadata %v, want x-head: h1", head)
	}
	if got := trail.Get("x-trail"); len(got) != 1 || got[0] != "t1" {
		t.Fatalf("trailer metadata %v, want x-trail: t1 (trailers lost on the way)", trail)
	}
	deny := []byte("deny")
	err := cc.Invoke(ctx, "/sluice.test.Echo/Echo", &deny, &out)
	if status.Code(err) != codes.PermissionDenied || status.Convert(err).Message() != "denied on purpose" {
		t.Fatalf("error status through the tunnel: %v, want PermissionDenied \"denied on purpose\"", err)
	}
}

func TestGRPCStreamingAllThreeKinds(t *testing.T) {
	cc, _ := grpcThroughTunnel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Server streaming, with a trailer after the last message.
	cs, err := cc.NewStream(ctx, &echoDesc.Streams[0], "/sluice.test.Echo/Count")
	if err != nil {
		t.Fatal(err)
	}
	n := []byte("50")
	if err := cs.SendMsg(&n); err != nil {
		t.Fatal(err)
	}
	cs.CloseSend()
	for i := 0; ; i++ {
		var m []byte
		err := cs.RecvMsg(&m)
		if errors.Is(err, io.EOF) {
			if i != 50 {
				t.Fatalf("server stream ended after %d messages, want 50", i)
			}
			break
		}
		if err != nil {
			t.Fatalf("server stream message %d: %v", i, err)
		}
		if string(m) != strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, m)
		}
	}
	if got := cs.Trailer().Get("x-count"); len(got) != 1 || got[0] != "50" {
		t.Fatalf("server-stream trailer %v, want x-count: 50", cs.Trailer())
	}

	// Client streaming.
	ss, err := cc.NewStream(ctx, &echoDesc.Streams[1], "/sluice.test.Echo/Sum")
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		m := make([]byte, 1000)
		if err := ss.SendMsg(&m); err != nil {
			t.Fatal(err)
		}
	}
	ss.CloseSend()
	var sum []byte
	if err := ss.RecvMsg(&sum); err != nil || string(sum) != "20000" {
		t.Fatalf("client stream summed %q (%v), want 20000", sum, err)
	}

	// Bidirectional: each reply arrives before the next message is sent,
	// so the tunnel must carry both directions of one call at once.
	bs, err := cc.NewStream(ctx, &echoDesc.Streams[2], "/sluice.test.Echo/Chat")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		m := []byte("m" + strconv.Itoa(i))
		if err := bs.SendMsg(&m); err != nil {
			t.Fatal(err)
		}
		var r []byte
		if err := bs.RecvMsg(&r); err != nil || string(r) != "re:m"+strconv.Itoa(i) {
			t.Fatalf("bidi reply %d: %q, %v", i, r, err)
		}
	}
	bs.CloseSend()
	var r []byte
	if err := bs.RecvMsg(&r); !errors.Is(err, io.EOF) {
		t.Fatalf("bidi stream end: %v, want EOF", err)
	}
}

func TestGRPCDeadlineAndCancellationReachTheService(t *testing.T) {
	cc, svc := grpcThroughTunnel(t)
	in, out := []byte("x"), []byte(nil)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := cc.Invoke(ctx, "/sluice.test.Echo/Sleep", &in, &out)
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("call past its deadline: %v, want DeadlineExceeded", err)
	}
	<-svc.sleeping
	select {
	case why := <-svc.woke:
		if why == nil {
			t.Fatal("the service's context ended without an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the service never saw the deadline")
	}

	ctx, cancel = context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- cc.Invoke(ctx, "/sluice.test.Echo/Sleep", &in, &out) }()
	select {
	case <-svc.sleeping:
	case <-time.After(10 * time.Second):
		t.Fatal("Sleep never reached the service")
	}
	cancel()
	if err := <-errc; status.Code(err) != codes.Canceled {
		t.Fatalf("cancelled call: %v, want Canceled", err)
	}
	select {
	case why := <-svc.woke:
		if !errors.Is(why, context.Canceled) {
			t.Fatalf("the service's context ended with %v, want context.Canceled", why)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client's cancellation never reached the service")
	}
}

func TestGRPCThousandConcurrentStreamsOnOneConnection(t *testing.T) {
	cc, _ := grpcThroughTunnel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 1000
	streams := make([]grpc.ClientStream, 0, n)
	for i := range n {
		bs, err := cc.NewStream(ctx, &echoDesc.Streams[2], "/sluice.test.Echo/Chat")
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		m := []byte(strconv.Itoa(i))
		if err := bs.SendMsg(&m); err != nil {
			t.Fatalf("stream %d send: %v", i, err)
		}
		var r []byte
		if err := bs.RecvMsg(&r); err != nil || string(r) != "re:"+strconv.Itoa(i) {
			t.Fatalf("stream %d reply %q: %v", i, r, err)
		}
		streams = append(streams, bs) // held open: all n are live at once
	}
	for i, bs := range streams {
		bs.CloseSend()
		var r []byte
		if err := bs.RecvMsg(&r); !errors.Is(err, io.EOF) {
			t.Fatalf("stream %d end: %v", i, err)
		}
	}
}
