package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/server"
)

// runDev is `sluice dev PORT`: an edge on loopback and an agent in one
// process, so a newcomer gets a working URL with one command.
func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCommand("dev", "dev PORT|HOST:PORT [--name NAME] [--http ADDR] [--demo]", stderr)
	var (
		httpAddr, name string
		demo           bool
		drainTimeout   time.Duration
		metricsAddr    string
		inf            inspectFlags
	)
	c.fs.StringVar(&httpAddr, "http", defaultDevHTTP, "`address` of the HTTP ingress (when not given and 8080 is taken, a free port is used; when given, it must be free)")
	c.fs.StringVar(&name, "name", "", "subdomain `name` (default: a random readable one)")
	c.fs.DurationVar(&drainTimeout, "drain-timeout", server.DefaultDrainTimeout, "on Ctrl-C, how long requests in flight may finish (a second Ctrl-C exits at once)")
	c.fs.BoolVar(&demo, "demo", false, "serve a built-in demo page instead of a local service")
	c.fs.BoolVar(&c.verbose, "v", false, "verbose logs")
	metricsFlag(c, &metricsAddr)
	inf.register(c)
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	explicitHTTP := c.given("http")
	var local string
	switch {
	case len(pos) == 1:
		if local, err = localAddr(pos[0]); err != nil {
			return usagef("dev: %v", err)
		}
	case len(pos) == 0 && demo:
	default:
		c.fs.Usage()
		return usagef("dev: give the local port to expose, e.g. sluice dev 3000 (or sluice dev --demo)")
	}
	log, err := c.logger()
	if err != nil {
		return err
	}
	if err := c.maybeStartPprof(log); err != nil {
		return err
	}
	// The edge half of dev mode is plumbing: keep its chatter out of the
	// request log unless asked.
	edgeLog := log.With("side", "edge")
	if !c.verbose && c.logLevel == "info" {
		c.logLevel = "warn"
		if edgeLog, err = c.logger(); err != nil {
			return err
		}
		edgeLog = edgeLog.With("side", "edge")
	}
	var tok [16]byte
	rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])

	httpLn, err := net.Listen("tcp", httpAddr)
	if err != nil && explicitHTTP {
		// An address the user chose is one they will type: moving it
		// silently would send them to something else.
		return fmt.Errorf("dev: cannot listen for HTTP on %s (--http): %w: free it or pick another", httpAddr, err)
	}
	if err != nil {
		// The default 8080 is a popular port: rather than fail, take a free one.
		host, _, serr := net.SplitHostPort(httpAddr)
		if serr != nil {
			return usagef("dev: --http %q: %v", httpAddr, serr)
		}
		if httpLn, err = net.Listen("tcp", net.JoinHostPort(host, "0")); err != nil {
			return fmt.Errorf("dev: cannot listen for HTTP on %s: %w", host, err)
		}
		fmt.Fprintf(stderr, "sluice dev: %s is taken; serving HTTP on %s instead\n", httpAddr, httpLn.Addr())
	}
	edgeDrain, agentDrain := drainTimeout, drainTimeout
	if drainTimeout <= 0 {
		edgeDrain, agentDrain = -1, time.Nanosecond // 0: cut at once
	}
	t := agent.Tunnel{Kind: control.KindHTTP, Name: name, Local: local, LogRequests: true}
	if demo {
		t.Local, t.Handler = "", demoHandler("")
	} else {
		t.Fallback = demoHandler(local)
	}
	// One registry for both halves: their metrics are named apart.
	acfg := agent.Config{Logger: log.With("side", "agent"), Tunnels: []agent.Tunnel{t}, ShutdownTimeout: agentDrain}
	stopObserve, err := observeAgent(&acfg, metricsAddr, &inf, log, stdout)
	defer stopObserve()
	if err != nil {
		httpLn.Close()
		return err
	}
	srv, err := server.New(server.Config{Listen: "127.0.0.1:0", HTTPListener: httpLn, Domain: "localhost", Tokens: []string{token}, Logger: edgeLog, Metrics: acfg.Metrics, DrainTimeout: edgeDrain})
	if err != nil {
		httpLn.Close()
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var serveErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		serveErr = srv.Serve(ctx)
		cancel()
	}()

	target := local
	if demo {
		target = "built-in demo page"
	}
	acfg.Server, acfg.Token = srv.Addr().String(), token
	then := acfg.OnAssigned // the inspector's line, printed after
	acfg.OnAssigned = func(i int, a control.Assigned) {
		fmt.Fprintf(stdout, "Forwarding %s -> %s\n", a.URL, target)
		fmt.Fprintf(stdout, "Try: curl %s   (Ctrl-C to stop)\n", a.URL)
		if then != nil {
			then(i, a)
		}
	}
	a, err := agent.New(acfg)
	if err != nil {
		cancel()
		wg.Wait()
		return err
	}
	runErr := a.Run(ctx)
	cancel()
	wg.Wait()
	return errors.Join(runErr, serveErr)
}

// defaultDevHTTP is where `sluice dev` serves HTTP unless told otherwise.
const defaultDevHTTP = "127.0.0.1:8080"

// demoHandler answers with a page showing that the tunnel works. With local
// set, it is the fallback while nothing listens there and says so. Only GET
// and HEAD get the page with 200: answering a POST with 200 would tell an
// API client its write succeeded when no app saw it.
func demoHandler(local string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("X-Sluice-Demo", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			if local != "" {
				fmt.Fprintf(w, "sluice: the local app is not running: nothing listens on %s, so this %s was not delivered. Start the app and retry.\n", local, r.Method)
			} else {
				fmt.Fprintf(w, "sluice: no local app: this is the built-in demo page (--demo), so this %s was not delivered anywhere.\n", r.Method)
			}
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Sluice-Demo", "1")
		var b strings.Builder
		b.WriteString("<!doctype html><html><head><meta charset=\"utf-8\"><title>sluice: the tunnel works</title></head>")
		b.WriteString("<body style=\"font-family:sans-serif;max-width:44em;margin:3em auto\"><h1>The tunnel works</h1>")
		if local != "" {
			fmt.Fprintf(&b, "<p>This request crossed the sluice edge and agent, but nothing is listening on <code>%s</code> yet, so sluice answered itself. Start your app there and reload.</p>", html.EscapeString(local))
		} else {
			b.WriteString("<p>This page is served by the sluice agent itself (<code>--demo</code>). Run <code>sluice dev PORT</code> to expose your own app.</p>")
		}
		fmt.Fprintf(&b, "<h2>Your request</h2><pre>%s %s %s\nHost: %s\n", html.EscapeString(r.Method), html.EscapeString(r.URL.RequestURI()), html.EscapeString(r.Proto), html.EscapeString(r.Host))
		keys := make([]string, 0, len(r.Header))
		for k := range r.Header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s: %s\n", html.EscapeString(k), html.EscapeString(strings.Join(r.Header[k], ", ")))
		}
		b.WriteString("</pre></body></html>\n")
		io.WriteString(w, b.String())
	})
}
