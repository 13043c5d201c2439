package agent

import (
	"context"
	cryptotls "crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/transport"
)

// bannerServer accepts connections and writes banner on each, then reads
// until the client hangs up, like sshd waiting for the client's version.
func bannerServer(t *testing.T, banner string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.WriteString(c, banner)
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// runOnce runs an agent against addr and returns Run's error and how long
// it took.
func runOnce(t *testing.T, addr string, mod func(*Config)) (error, time.Duration) {
	t.Helper()
	cfg := Config{Server: addr, Token: testToken, Logger: testLogger(t), FirstConnectTimeout: 20 * time.Second,
		Tunnels: []Tunnel{{Kind: control.KindTCP, Local: "127.0.0.1:1"}}}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	began := time.Now()
	err = a.Run(ctx)
	return err, time.Since(began)
}

func TestWrongPeersAreNamedWithoutRetrying(t *testing.T) {
	// The edge's own public HTTP port: the mistake the message is for.
	e := startEdge(t, nil)
	plainEdge := e.srv.Addr().String()
	tlsE, _ := tlsEdge(t)
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	defer tlsSrv.Close()
	pinCfg, err := transport.ClientTLS{Pin: mustPin(t, tlsE)}.Config()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		addr string
		tls  bool
		want PeerKind
	}{
		{"edge HTTP port", e.srv.HTTPAddr().String(), false, PeerHTTP},
		{"ssh", bannerServer(t, "SSH-2.0-OpenSSH_9.6\r\n"), false, PeerSSH},
		{"tls where plain expected", tlsE.srv.Addr().String(), false, PeerTLS},
		{"plain edge where tls expected", plainEdge, true, PeerPlainSluice},
		{"https server where plain expected", tlsSrv.Listener.Addr().String(), false, PeerTLS},
		{"smtp", bannerServer(t, "220 mail.example ESMTP\r\n"), false, PeerLineBased},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err, took := runOnce(t, tc.addr, func(c *Config) {
				if tc.tls {
					c.TLS = pinCfg
				}
			})
			var wp *WrongPeerError
			if !errors.As(err, &wp) || wp.Kind != tc.want {
				t.Fatalf("Run against %s: %v, want a WrongPeerError of kind %s", tc.name, err, tc.want)
			}
			// It did not retry for the 20 s it was allowed to.
			if took > 8*time.Second {
				t.Fatalf("naming the peer took %v", took)
			}
			t.Logf("%s: %v in %v", tc.name, err, took.Round(time.Millisecond))
		})
	}
}

// TestRedisIsNamed runs against a real redis-server, started on a free
// loopback port. Redis drops a connection whose first bytes look like HTTP,
// so only a probe that speaks to it in lines gets an answer.
func TestRedisIsNamed(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is not installed: .ci/run installs Debian's redis-server for this test")
		}
		t.Skip("redis-server is not installed (apt-get install redis-server)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--daemonize", "no", "--loglevel", "warning")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		t.Logf("redis-server said:\n%s", out.String())
	}()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i > 500 {
			t.Fatal("redis-server did not start listening in 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, tls := range []bool{false, true} {
		err, took := runOnce(t, addr, func(c *Config) {
			if tls {
				c.TLS = &cryptotls.Config{InsecureSkipVerify: true, MinVersion: cryptotls.VersionTLS13}
			}
		})
		var wp *WrongPeerError
		if !errors.As(err, &wp) || wp.Kind != PeerRedis {
			t.Fatalf("Run against redis (tls %v): %v, want a WrongPeerError of kind %s", tls, err, PeerRedis)
		}
		// About a second: the probe starts 250 ms in and ends within 750 ms;
		// the rest is slack for a loaded machine running -race.
		if took > 3*time.Second {
			t.Fatalf("naming redis (tls %v) took %v, want about a second", tls, took)
		}
		t.Logf("redis (tls %v): %v in %v", tls, err, took.Round(time.Millisecond))
	}
}
