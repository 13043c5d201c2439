package systems

import (
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/bench/link"
	"github.com/sluicehq/sluice/bench/load"
	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/target"
)

func buildSluice(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sluice")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sluice")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/sluice: %v\n%s", err, out)
	}
	return bin
}

// startBuilt builds sluice and starts the system mk makes of it, against a
// target of its own, until the test ends; ctx ends with the test too.
func startBuilt(t *testing.T, mk func(string, error) System, opts StartOptions) (context.Context, *Instance) {
	t.Helper()
	bin, tg := builtWithTarget(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	in, err := mk(bin, nil).Start(ctx, Env{Dir: t.TempDir(), TargetTCP: tg.TCPAddr(), TargetHTTP: tg.HTTPAddr()}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Stop)
	return ctx, in
}

// builtWithTarget builds sluice and starts a target until the test ends;
// it skips the test with -short.
func builtWithTarget(t *testing.T) (string, *target.Target) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds sluice; skipped with -short")
	}
	bin := buildSluice(t)
	tg, err := target.Start("127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	return bin, tg
}

// Both sluice systems carry traffic, directly and across a link between
// agent and edge; sluice-tls does it over TLS the agent verified.
func TestSluiceSystemsCarryTraffic(t *testing.T) {
	bin, tg := builtWithTarget(t)
	wan := link.Symmetric(10*time.Millisecond, 0)
	for _, c := range []struct {
		sys  System
		link *link.Shape
	}{{Sluice(bin, nil), nil}, {SluiceTLS(bin, nil), nil}, {SluiceTLS(bin, nil), &wan}} {
		name := c.sys.Name()
		if c.link != nil {
			name += " across " + c.link.String()
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			in, err := c.sys.Start(ctx, Env{Dir: t.TempDir(), TargetTCP: tg.TCPAddr(), TargetHTTP: tg.HTTPAddr()}, StartOptions{Link: c.link})
			if err != nil {
				t.Fatal(err)
			}
			defer in.Stop()
			deadline := time.Now().Add(30 * time.Second)
			for load.Probe(in.Addr, time.Second) != nil {
				if err := in.Alive(); err != nil {
					t.Fatal(err)
				}
				if time.Now().After(deadline) {
					t.Fatalf("no round trip through %s within 30s", name)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if n, _, err := load.TransferFor(in.Addr, 4<<20, true, 20*time.Second, nil); err != nil || n != 4<<20 {
				t.Fatalf("upload through %s: %d bytes, %v", name, n, err)
			}
			if (c.link != nil) != (in.Link != nil) {
				t.Fatalf("link asked for: %v, link running: %v", c.link != nil, in.Link != nil)
			}
			if c.sys.Name() == plan.SluiceTLS && !strings.Contains(c.sys.Version(), "TLS 1.3") {
				t.Fatalf("sluice-tls version %q does not say it runs TLS", c.sys.Version())
			}
		})
	}
}

// Further agents join the same edge, each with a tunnel of its own that
// carries a round trip, and the edge's memory reads split by backing.
func TestSluiceAddAgentJoinsTheSameEdge(t *testing.T) {
	ctx, in := startBuilt(t, SluiceTLS, StartOptions{Agents: 2})
	probe := func(addr string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for load.Probe(addr, time.Second) != nil {
			if err := in.Alive(); err != nil {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("no round trip through %s within 30s", addr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	probe(in.Addr)
	edges := 0
	for _, p := range in.Procs {
		if p.Edge {
			edges++
		}
	}
	seen := map[string]bool{in.Addr: true}
	for i := 0; i < 2; i++ {
		addr, err := in.AddAgent(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if seen[addr] {
			t.Fatalf("agent %d got address %s, already another tunnel's", i+1, addr)
		}
		seen[addr] = true
		probe(addr)
	}
	if len(in.Procs) != 4 || edges != 1 {
		t.Fatalf("want one edge and three agent processes, got %d processes of which %d edges", len(in.Procs), edges)
	}
	res, err := in.EdgeResident()
	if err != nil {
		t.Fatal(err)
	}
	if res.Anon <= 0 || res.File <= 0 || res.Anon+res.File+res.Shmem != res.RSS {
		t.Fatalf("edge memory %+v: want anonymous and file-backed parts adding up to RSS", res)
	}
}

// sluice-policy's HTTP tunnel asks for the credentials the harness's
// clients send, refuses what its rules refuse, and serves the load.
func TestSluicePolicyGuardsTheHTTPTunnel(t *testing.T) {
	ctx, in := startBuilt(t, SluicePolicy, StartOptions{HTTP: true})
	if v := SluicePolicy("", nil).Version(); in.HTTPAuth == "" || !strings.Contains(v, "--basic-auth") {
		t.Fatalf("sluice-policy gives its clients no credentials (%q) or does not say what it runs (%q)", in.HTTPAuth, v)
	}
	_, port, _ := net.SplitHostPort(in.HTTPAddr)
	host := net.JoinHostPort(in.HTTPHost, port)
	get := func(path string, withAuth bool) int {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+in.HTTPAddr+path, nil)
		req.Host = host
		if withAuth {
			user, pass, _ := strings.Cut(in.HTTPAuth, ":")
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(30 * time.Second)
	for get("/", true) != http.StatusOK {
		if err := in.Alive(); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the policy-guarded HTTP tunnel never answered 200 with the credentials")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := get("/", false); code != http.StatusUnauthorized {
		t.Fatalf("without credentials: %d, want 401", code)
	}
	if code := get("/admin", true); code != http.StatusNotFound {
		t.Fatalf("a path the CEL condition denies: %d, want 404", code)
	}
	res, err := load.HTTP(ctx, load.HTTPTarget{Addr: in.HTTPAddr, Host: host, Auth: in.HTTPAuth}, 4, 0, 200*time.Millisecond, nil)
	if err != nil || res.Failed != 0 || res.Done == 0 {
		t.Fatalf("the harness's load through the policy: %+v, %v", res, err)
	}
}
