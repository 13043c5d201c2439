package bench

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// InjectDelayEnv names the test-only hook that slows a tunnel down: sluice's
// agent sleeps this long (a Go duration) per forwarded chunk, and so does
// the harness's own relay. The regression gate's test sets it to prove the
// gate notices a slower tunnel.
const InjectDelayEnv = "SLUICE_DEBUG_INJECT_DELAY"

// relayEnv carries "listen=to,listen=to" pairs to a relay child.
const relayEnv = "SLUICE_BENCH_RELAY"

// runRelayChild is a one-process userspace TCP relay: the harness uses it
// as a stand-in tunnel in its own tests (it proves the scenario code and the
// gate without the sluice binary) and, on request, as a yardstick for what a
// plain read/write copy costs.
func runRelayChild() {
	var delay time.Duration
	if v := os.Getenv(InjectDelayEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "relay: %s=%q is not a Go duration (e.g. 2ms): %v\n", InjectDelayEnv, v, err)
			os.Exit(2)
		}
		delay = d
	}
	pairs := strings.Split(os.Getenv(relayEnv), ",")
	for _, p := range pairs {
		listen, to, ok := strings.Cut(p, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "relay: %s=%q, want listen=to pairs\n", relayEnv, os.Getenv(relayEnv))
			os.Exit(2)
		}
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			fmt.Fprintf(os.Stderr, "relay: listen %s: %v\n", listen, err)
			os.Exit(2)
		}
		go relayAccept(ln, to, delay)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin) // runs until the parent goes away
	select {}
}

func relayAccept(ln net.Listener, to string, delay time.Duration) {
	for {
		c, err := ln.Accept()
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", to)
			if err != nil {
				return
			}
			defer u.Close()
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); relayCopy(u, c, delay) }()
			go func() { defer wg.Done(); relayCopy(c, u, delay) }()
			wg.Wait()
		}()
	}
}

// relayCopy copies src to dst a chunk at a time, sleeping delay per chunk,
// then half-closes dst so the far side sees EOF.
func relayCopy(dst, src net.Conn, delay time.Duration) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if delay > 0 {
				time.Sleep(delay)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}
