package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/agent/inspect"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/buildinfo"
)

// The flags that make a running edge or agent observable: --metrics on
// every command, --inspect and --inspect-body-limit on the agent commands
// that carry HTTP tunnels, --admin on the server.

// metricsFlag registers --metrics on c.
func metricsFlag(c *command, dst *string) {
	c.fs.StringVar(dst, "metrics", "", "serve Prometheus metrics at http://`host:port`/metrics, e.g. 127.0.0.1:9100 (off when empty)")
}

// inspectFlags are --inspect and --inspect-body-limit.
type inspectFlags struct {
	addr      string
	bodyLimit byteSize
}

func (f *inspectFlags) register(c *command) {
	f.bodyLimit = inspect.DefaultBodyLimit
	c.fs.StringVar(&f.addr, "inspect", "", "serve the request inspector on this `host:port` (default "+inspect.DefaultAddr+", or the next free port); --inspect=false turns it off")
	c.fs.Var(&f.bodyLimit, "inspect-body-limit", "`bytes` of each request and response body the inspector keeps, e.g. 1MiB or 65536")
}

// off reports whether --inspect=false (or off, no, 0) was given.
func (f *inspectFlags) off() bool {
	switch strings.ToLower(f.addr) {
	case "false", "off", "no", "0":
		return true
	}
	return false
}

// byteSize is a flag of bytes: a number with an optional KiB/MiB/GiB (or
// KB/MB/GB, k/m/g) suffix.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(s string) error {
	t := strings.TrimSpace(s)
	mult := int64(1)
	lower := strings.ToLower(t)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}} {
		if strings.HasSuffix(lower, u.suffix) {
			mult, t = u.mult, strings.TrimSpace(t[:len(t)-len(u.suffix)])
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size in bytes: write 1048576, 512KiB or 1MiB", s)
	}
	*b = byteSize(n * mult)
	return nil
}

// newRegistry is the registry --metrics serves: the Go runtime and process
// collectors, sluice_build_info, and whatever the edge or agent registers.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	bi := buildinfo.Get()
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sluice_build_info",
		Help: "Always 1; the labels say which sluice build runs: version, commit (revision), whether its tree was modified, Go and control protocol versions.",
		ConstLabels: prometheus.Labels{
			"version": bi.Version, "revision": bi.Revision, "modified": strconv.FormatBool(bi.Modified),
			"goversion": bi.GoVersion, "control_protocol": strconv.Itoa(control.Version),
		},
	})
	info.Set(1)
	reg.MustRegister(info, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// startMetrics serves reg's /metrics on addr until stop, warning when the
// address is reachable beyond this machine.
func startMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usagef("--metrics %s: cannot listen: %v (pass a free host:port such as 127.0.0.1:9100)", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		log.Warn("metrics are reachable from the network (tunnel names and traffic volumes); bind --metrics to 127.0.0.1 unless that is intended", "addr", ln.Addr().String())
	}
	log.Info("metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return func() { srv.Close() }, nil
}

// observeAgent applies --metrics and --inspect to an agent's configuration.
// With an inspector it wraps the HTTP tunnels, serves the page and prints
// "inspector: URL" after the first public URL. stop ends the inspector.
func observeAgent(cfg *agent.Config, metricsAddr string, inf *inspectFlags, log *slog.Logger, stdout io.Writer) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for _, f := range stops {
			f()
		}
	}
	if metricsAddr != "" {
		reg := newRegistry()
		cfg.Metrics = reg
		s, err := startMetrics(metricsAddr, reg, log)
		if err != nil {
			return stop, err
		}
		stops = append(stops, s)
	}
	// A tunnel that sends a PROXY header pipes bytes: nothing to inspect.
	hasHTTP := false
	for _, t := range cfg.Tunnels {
		hasHTTP = hasHTTP || (t.Kind == control.KindHTTP && t.ProxyProtocol == "")
	}
	if inf == nil || inf.off() || !hasHTTP {
		return stop, nil
	}
	in, err := startInspector(inf, log)
	if err != nil {
		return stop, err
	}
	stops = append(stops, func() { in.Close() })
	cfg.HTTPMiddleware = in.Wrap
	prevRefused := cfg.OnPolicyRefused
	cfg.OnPolicyRefused = func(i int, m control.PolicyRefused) {
		if prevRefused != nil {
			prevRefused(i, m)
		}
		in.Refused(i, m)
	}
	var once sync.Once
	prev := cfg.OnAssigned
	cfg.OnAssigned = func(i int, a control.Assigned) {
		if prev != nil {
			prev(i, a)
		}
		once.Do(func() { fmt.Fprintf(stdout, "inspector: %s\n", in.URL()) })
	}
	return stop, nil
}

func startInspector(inf *inspectFlags, log *slog.Logger) (*inspect.Inspector, error) {
	addr := inf.addr
	if strings.ToLower(addr) == "true" {
		addr = ""
	}
	limit := int64(inf.bodyLimit)
	if limit == 0 {
		limit = -1 // inspect reads zero as "the default"; the flag means none
	}
	in, err := inspect.New(inspect.Config{Addr: addr, BodyLimit: limit, Logger: log})
	if err != nil {
		var le *inspect.ListenError
		if errors.As(err, &le) {
			return nil, usagef("--inspect %s: cannot listen: %v (pass a free host:port, or --inspect=false)", le.Addr, le.Err)
		}
		return nil, err
	}
	go in.Serve()
	return in, nil
}

// adminFlags are --admin and --admin-token on the server.
type adminFlags struct {
	addr, token string
}

func (f *adminFlags) register(c *command) {
	c.fs.StringVar(&f.addr, "admin", "", "serve the edge's operator console and JSON (/api/status) on this `host:port`; a bare :port binds 127.0.0.1 (off when empty)")
	c.fs.StringVar(&f.token, "admin-token", "", "bearer `token` for --admin (default: a random one, printed at start)")
}

// apply fills the server's admin settings, printing the generated token.
func (f *adminFlags) apply(addr, token *string, stdout io.Writer) error {
	if f.addr == "" {
		if f.token != "" {
			return usagef("server: --admin-token without --admin: give the admin address too")
		}
		return nil
	}
	a := f.addr
	if strings.HasPrefix(a, ":") {
		a = "127.0.0.1" + a
	} else if _, err := strconv.Atoi(a); err == nil {
		a = "127.0.0.1:" + a
	}
	if _, _, err := net.SplitHostPort(a); err != nil {
		return usagef("server: --admin %q: write host:port, e.g. 127.0.0.1:7836", f.addr)
	}
	tok := f.token
	if tok == "" {
		var b [16]byte
		rand.Read(b[:])
		tok = hex.EncodeToString(b[:])
		fmt.Fprintf(stdout, "sluice edge: admin token %s (pass --admin-token to choose it)\n", tok)
	}
	*addr, *token = a, tok
	return nil
}
