package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testutil"
)

// drainApp is a local app whose requests take their time: /slow answers
// after ms milliseconds, /upload counts a body however slowly it comes,
// and /ws upgrades the connection and echoes lines.
func drainApp(t *testing.T) string {
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		io.WriteString(w, "slow done")
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "got %d", n)
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		for {
			l, err := rw.ReadString('\n')
			if err != nil {
				return
			}
			rw.WriteString("echo " + l)
			rw.Flush()
		}
	})
	app := httptest.NewServer(mux)
	t.Cleanup(app.Close)
	return strconv.Itoa(app.Listener.Addr().(*net.TCPAddr).Port)
}

// answer sends a request in the background; the channel gets "STATUS BODY",
// or the error.
func answer(hc *http.Client, method, url string, body io.Reader) <-chan string {
	out := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest(method, url, body)
		resp, err := hc.Do(req)
		if err != nil {
			out <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	return out
}

// upgraded opens an upgraded (WebSocket-style) connection through the
// ingress to host.
func upgraded(t *testing.T, ingress, host string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", ingress)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", host)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade through the tunnel: %v %v", resp, err)
	}
	return c, br
}

func echoLine(t *testing.T, c net.Conn, br *bufio.Reader, line string) {
	t.Helper()
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatalf("writing %q: %v", line, err)
	}
	got, err := br.ReadString('\n')
	if err != nil || got != "echo "+line+"\n" {
		t.Fatalf("echo of %q: %q, %v", line, got, err)
	}
}

// TestE2EEdgeDrainsWorkInFlight: SIGTERM on the edge lets a slow request,
// an upload, an upgraded connection and a TCP connection that were in
// flight finish, refuses new connections meanwhile, and exits 0 once they
// are done.
func TestE2EEdgeDrainsWorkInFlight(t *testing.T) {
	listen := loopbackAddr(t)
	ingress := loopbackAddr(t)
	edge := startProc(t, "server", "--listen", listen, "--http", ingress, "--domain", "localhost", "--token", "T", "--insecure", "--drain-timeout", "15s")
	edge.waitLine(`agents connect to`)
	hp := startProc(t, "http", drainApp(t), "--server", listen, "--token", "T", "--insecure", "--name", "drain", "--inspect=false")
	url := hp.waitLine(`^Forwarding (http://drain\.localhost:\d+) -> `)[1]
	hold := testutil.Serve(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			io.WriteString(c, "tcp "+l)
		}
	})
	tp := startProc(t, "tcp", hold, "--server", listen, "--token", "T", "--insecure")
	pub := tp.waitLine(`^Forwarding tcp://(\S+) -> `)[1]

	hc := viaIngress(ingress)
	defer hc.CloseIdleConnections()
	slow := answer(hc, "GET", url+"/slow?ms=2500", nil)
	pr, pw := io.Pipe()
	upload := answer(hc, "POST", url+"/upload", pr)
	chunk := strings.Repeat("u", 64<<10)
	io.WriteString(pw, chunk)
	ws, wsr := upgraded(t, ingress, "drain.localhost")
	echoLine(t, ws, wsr, "before")
	tc, err := net.Dial("tcp", pub)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(30 * time.Second))
	tr := bufio.NewReader(tc)
	io.WriteString(tc, "before\n")
	if l, err := tr.ReadString('\n'); err != nil || l != "tcp before\n" {
		t.Fatalf("tcp through the tunnel: %q %v", l, err)
	}
	time.Sleep(300 * time.Millisecond) // the slow request is in the app now

	edge.cmd.Process.Signal(syscall.SIGTERM)
	// The edge stops accepting at once...
	eventually(t, 5*time.Second, "the ingress to refuse new connections", func() error {
		c, err := net.DialTimeout("tcp", ingress, time.Second)
		if err == nil {
			c.Close()
			return fmt.Errorf("a new connection to %s was accepted while draining", ingress)
		}
		return nil
	})
	// ...while everything in flight goes on.
	for i := range 3 {
		io.WriteString(pw, chunk)
		echoLine(t, ws, wsr, fmt.Sprintf("during %d", i))
		io.WriteString(tc, "during\n")
		if l, err := tr.ReadString('\n'); err != nil || l != "tcp during\n" {
			t.Fatalf("tcp during the drain: %q %v", l, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	pw.Close()
	if got := <-upload; got != fmt.Sprintf("200 got %d", 4*len(chunk)) {
		t.Fatalf("the upload in flight: %s", got)
	}
	if got := <-slow; got != "200 slow done" {
		t.Fatalf("the slow request in flight: %s", got)
	}
	select {
	case <-edge.done:
		t.Fatalf("the edge exited (%d) with an upgraded and a TCP connection still open; stderr:\n%s", edge.code, edge.stderr.String())
	default:
	}
	echoLine(t, ws, wsr, "last")
	ws.Close()
	tc.Close()
	if code := edge.wait(); code != 0 {
		t.Fatalf("the edge exited %d after draining; stderr:\n%s", code, edge.stderr.String())
	}
	if !strings.Contains(edge.stderr.String(), "drained") {
		t.Errorf("the edge did not log the end of its drain; stderr:\n%s", edge.stderr.String())
	}
	hp.stop(syscall.SIGTERM)
	tp.stop(syscall.SIGTERM)
}

// TestE2EDevDrainsRequestsInFlight: Ctrl-C on `sluice dev` lets a request
// in flight get its answer before the process exits 0.
func TestE2EDevDrainsRequestsInFlight(t *testing.T) {
	ingress := loopbackAddr(t)
	dev := startProc(t, "dev", drainApp(t), "--http", ingress, "--inspect=false", "--name", "d2")
	url := dev.waitLine(`^Forwarding (http://d2\.localhost:\d+) -> `)[1]
	hc := viaIngress(ingress)
	defer hc.CloseIdleConnections()
	start := time.Now()
	slow := answer(hc, "GET", url+"/slow?ms=2000", nil)
	time.Sleep(500 * time.Millisecond)
	dev.cmd.Process.Signal(os.Interrupt)
	if got := <-slow; got != "200 slow done" {
		t.Fatalf("the request in flight got %q after %v; want the app's answer", got, time.Since(start))
	}
	if code := dev.wait(); code != 0 {
		t.Fatalf("dev exited %d; stderr:\n%s", code, dev.stderr.String())
	}
}

// TestE2EEdgeSecondSignalCutsTheDrain: a second SIGTERM during the drain
// exits at once with 143.
func TestE2EEdgeSecondSignalCutsTheDrain(t *testing.T) {
	listen := loopbackAddr(t)
	edge := startProc(t, "server", "--listen", listen, "--token", "T", "--insecure")
	edge.waitLine(`agents connect to`)
	hold := testutil.Serve(t, func(c net.Conn) { io.Copy(c, c) })
	ag := startProc(t, "tcp", hold, "--server", listen, "--token", "T", "--insecure")
	pub := ag.waitLine(`^Forwarding tcp://(\S+) -> `)[1]
	c, err := net.Dial("tcp", pub)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "x")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	edge.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-edge.done:
		t.Fatalf("the edge exited (%d) on the first SIGTERM with a connection in flight", edge.code)
	case <-time.After(500 * time.Millisecond):
	}
	second := time.Now()
	if code := edge.stop(syscall.SIGTERM); code != exitSecondTerminate {
		t.Fatalf("exit %d after a second SIGTERM, want %d", code, exitSecondTerminate)
	}
	if took := time.Since(second); took > 2*time.Second {
		t.Fatalf("the second SIGTERM took %v", took)
	}
	ag.stop(syscall.SIGTERM)
}
