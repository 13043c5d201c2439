package main

import (
	"github.com/sluicehq/sluice/internal/testutil"

	"context"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDevFallsBackWhenPortTaken: a taken --http port is not fatal for the
// newcomer's command; it serves on a free port and says so.
func TestDevFallsBackWhenPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	out := &lineWriter{lines: make(chan string, 10)}
	var stderr lockedWriter
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runDev(ctx, []string{"--demo", "--http", taken.Addr().String()}, out, &stderr) }()
	var url, port string
	for url == "" {
		select {
		case l := <-out.lines:
			if m := regexp.MustCompile(`^Forwarding (http://\S+:(\d+)) -> built-in demo page$`).FindStringSubmatch(l); m != nil {
				url, port = m[1], m[2]
			}
		case err := <-done:
			t.Fatalf("dev ended early: %v; stderr %q", err, stderr.String())
		case <-time.After(10 * time.Second):
			t.Fatal("no Forwarding line in 10 s")
		}
	}
	if strings.HasSuffix(taken.Addr().String(), ":"+port) {
		t.Fatalf("dev claims the taken port %s", port)
	}
	if !strings.Contains(stderr.String(), "is taken") {
		t.Fatalf("stderr does not explain the port change: %q", stderr.String())
	}
	c := viaIngress("127.0.0.1:" + port)
	defer c.CloseIdleConnections()
	resp, err := c.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "--demo") {
		t.Fatalf("demo page: %d %q", resp.StatusCode, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("dev after cancel: %v", err)
	}
}

type lockedWriter struct{ testutil.SyncBuffer }
