package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/testutil"
	"github.com/sluicehq/sluice/mux"
	"github.com/sluicehq/sluice/server"
)

// dialFrom dials addr from a loopback source address of the test's choice,
// so floods come from other "hosts" than the real agent.
func dialFrom(ctx context.Context, src, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	return d.DialContext(ctx, "tcp", addr)
}

// TestFloodsLeaveRoomForARealAgent runs, at once, silent connections from
// four addresses, wrong-token guessing from a fifth and a registration flood
// from an authenticated session on a sixth, then times a real agent's
// connection from 127.0.0.1.
func TestFloodsLeaveRoomForARealAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("a flood of a few thousand connections; skipped in -short mode")
	}
	var logs testutil.SyncBuffer
	srv, err := server.New(server.Config{Listen: "127.0.0.1:0", HTTP: "127.0.0.1:0", Domain: "localhost", Tokens: []string{"T"},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	addr := srv.Addr().String()

	fctx, stopFlood := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var silent, guesses, refusedRegs atomic.Int64
	// Silent connections: each goroutine keeps one open, and opens another
	// as soon as the edge drops it.
	for _, src := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		for range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for fctx.Err() == nil {
					c, err := dialFrom(fctx, src, addr)
					if err != nil {
						continue
					}
					silent.Add(1)
					stop := context.AfterFunc(fctx, func() { c.Close() })
					c.Read(make([]byte, 1))
					stop()
					c.Close()
				}
			}()
		}
	}
	// Wrong tokens, as fast as the edge answers them.
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for fctx.Err() == nil {
				c, err := dialFrom(fctx, "127.0.0.6", addr)
				if err != nil {
					continue
				}
				sess, err := mux.Client(c, mux.DefaultConfig())
				if err != nil {
					c.Close()
					continue
				}
				stop := context.AfterFunc(fctx, func() { sess.Close() })
				if ctrl, err := sess.OpenStream(fctx); err == nil {
					control.WriteMessage(ctrl, control.Hello{Version: control.Version})
					control.WriteMessage(ctrl, control.Auth{Token: "guess"})
					if _, err := control.ReadMessage(ctrl); err == nil {
						guesses.Add(1)
					}
				}
				stop()
				sess.Close()
			}
		}()
	}
	// A registration flood: 1,100 TCP tunnels pipelined on one session.
	regsRead := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(regsRead)
		c, err := dialFrom(fctx, "127.0.0.7", addr)
		if err != nil {
			t.Error(err)
			return
		}
		sess, _ := mux.Client(c, mux.DefaultConfig())
		defer sess.Close()
		ctrl, err := sess.OpenStream(fctx)
		if err != nil {
			return
		}
		control.WriteMessage(ctrl, control.Hello{Version: control.Version})
		control.WriteMessage(ctrl, control.Auth{Token: "T"})
		for i := range 1100 {
			control.WriteMessage(ctrl, control.Register{Ref: uint32(i + 1), Kind: control.KindTCP})
		}
		for range 1101 {
			m, err := control.ReadMessage(ctrl)
			if err != nil {
				return
			}
			if ce, ok := m.(*control.Error); ok && ce.Code == control.CodeLimit {
				refusedRegs.Add(1)
			}
		}
	}()

	// Let the floods get going, then time a real agent.
	for silent.Load() < 2000 || guesses.Load() < 3 {
		time.Sleep(10 * time.Millisecond)
	}
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "real") })
	assigned := make(chan string, 1)
	actx, stopAgent := context.WithCancel(context.Background())
	a, err := agent.New(agent.Config{Server: addr, Token: "T", Tunnels: []agent.Tunnel{{Kind: control.KindHTTP, Handler: app}},
		OnAssigned: func(_ int, as control.Assigned) { assigned <- as.URL }})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	ran := make(chan error, 1)
	go func() { ran <- a.Run(actx) }()
	var url string
	select {
	case url = <-assigned:
	case err := <-ran:
		t.Fatalf("the real agent gave up during the flood: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the real agent did not connect within 10 s during the flood")
	}
	took := time.Since(began)
	t.Logf("real agent connected in %v during the flood (%d silent connections opened, %d wrong tokens answered, %d registrations refused)",
		took, silent.Load(), guesses.Load(), refusedRegs.Load())
	if took > 3*time.Second {
		t.Errorf("the real agent took %v to connect during the flood; want about a second at most", took)
	}
	c := viaIngress(srv.HTTPAddr().String())
	resp, err := c.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	c.CloseIdleConnections()
	if string(body) != "real" {
		t.Fatalf("the real tunnel answered %q during the flood", body)
	}
	select {
	case <-regsRead:
	case <-time.After(30 * time.Second):
		t.Error("the edge did not answer 1,100 registrations within 30 s")
	}
	stopFlood()
	wg.Wait()
	stopAgent()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-served; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}

	if refusedRegs.Load() < 1100-64 {
		t.Errorf("%d of 1,100 pipelined registrations were refused for the limit, want at least %d", refusedRegs.Load(), 1100-64)
	}
	out := logs.String()
	wrong := strings.Count(out, "wrong token")
	if int64(wrong) > 10 || guesses.Load() < 3 {
		t.Errorf("%d wrong tokens made %d log lines; want them summarised per source and interval", guesses.Load(), wrong)
	}
	fmt.Fprint(io.Discard, out)
}
