package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/internal/observe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/mux"
	"github.com/sluicehq/sluice/relay"
)

// Prometheus metrics of the edge. Every name is documented in
// docs/METRICS.md. Labels stay bounded: a tunnel is labelled by its name and
// URL (one series per live tunnel), never by a client address or a path.
//
// What is state (sessions, tunnels, bytes, RTT) is read from the live
// sessions at scrape time, so the data path pays only the atomic adds of its
// relay.Meter; what is an event (requests, refusals) is counted as it
// happens.
type edgeMetrics struct {
	s *Server

	requests  *prometheus.CounterVec
	grpc      *prometheus.CounterVec
	durations *prometheus.HistogramVec
	refused   *prometheus.CounterVec
	// policy counts the clients the traffic policy answered itself.
	policy *prometheus.CounterVec

	sessionsDesc, agentsDesc, tunnelsDesc, streamsDesc       *prometheus.Desc
	rttDesc, tunnelRTTDesc                                   *prometheus.Desc
	bytesDesc, tunnelStreamsDesc, tunnelOpenedDesc, certDesc *prometheus.Desc
	udpDropsDesc                                             *prometheus.Desc

	mu    sync.Mutex
	certs []certSource
	// hosts are the tunnels with per-request series; a scrape removes the
	// series of those neither routed nor leased any more (sweep).
	hosts map[string]struct{}
}

// certSource names a set of certificates whose expiry is exported: the
// agent listener's today, the HTTPS ingress's when it has one.
type certSource struct {
	listener string
	leaves   func() []*x509.Certificate
}

// rttBuckets spans loopback (tens of microseconds) to intercontinental links.
var rttBuckets = []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}

func newEdgeMetrics(s *Server, reg prometheus.Registerer) (*edgeMetrics, error) {
	m := &edgeMetrics{
		s: s,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_edge_http_requests_total",
			Help: "Public HTTP requests proxied to an HTTP tunnel, by tunnel and status class (1xx..5xx).",
		}, []string{"tunnel", "class"}),
		grpc: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_edge_grpc_requests_total",
			Help: "Public gRPC calls proxied to an HTTP tunnel, by tunnel and gRPC status code name (from grpc-status; a call that ended without one counts as its HTTP class would: UNKNOWN).",
		}, []string{"tunnel", "code"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_edge_http_request_duration_seconds",
			Help:    "Time from a public HTTP request's arrival until its response was fully sent, by tunnel.",
			Buckets: observe.DurationBuckets,
		}, []string{"tunnel"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_edge_registrations_refused_total",
			Help: "Agent sessions and tunnel registrations the edge refused, by reason (the control protocol's error code).",
		}, []string{"reason"}),
		policy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_edge_policy_refused_total",
			Help: "Public requests, TCP connections and UDP datagrams the traffic policy refused before a stream was opened, by tunnel kind, rule source (server, owner NAME, agent) and action.",
		}, []string{"kind", "source", "action"}),
		sessionsDesc:      prometheus.NewDesc("sluice_edge_sessions", "Agent sessions connected and authenticated.", nil, nil),
		agentsDesc:        prometheus.NewDesc("sluice_edge_agents", "Distinct agent tokens with at least one session connected.", nil, nil),
		tunnelsDesc:       prometheus.NewDesc("sluice_edge_tunnels", "Tunnels online, by kind.", []string{"kind"}, nil),
		streamsDesc:       prometheus.NewDesc("sluice_edge_streams_open", "Mux streams open across all agent sessions.", nil, nil),
		rttDesc:           prometheus.NewDesc("sluice_edge_session_rtt_seconds", "Latest keepalive round trip of each connected agent session (one observation per session, taken at scrape time).", nil, nil),
		tunnelRTTDesc:     prometheus.NewDesc("sluice_edge_tunnel_rtt_seconds", "Latest keepalive round trip of the session carrying a tunnel.", []string{"tunnel", "url"}, nil),
		bytesDesc:         prometheus.NewDesc("sluice_edge_tunnel_bytes_total", "Bytes a tunnel carried, counted while connections are open; direction in is from public clients toward the agent, out is back. Starts over when the tunnel re-registers.", []string{"tunnel", "url", "kind", "direction"}, nil),
		tunnelStreamsDesc: prometheus.NewDesc("sluice_edge_tunnel_streams_open", "Streams open to a tunnel's agent (public TCP connections, or pooled HTTP proxy connections).", []string{"tunnel", "url"}, nil),
		tunnelOpenedDesc:  prometheus.NewDesc("sluice_edge_tunnel_streams_opened_total", "Streams the edge opened to a tunnel's agent (one per public TCP connection, UDP flow or pooled HTTP proxy connection; none for a client the policy refused). Starts over when the tunnel re-registers.", []string{"tunnel", "url"}, nil),
		certDesc:          prometheus.NewDesc("sluice_edge_certificate_expiry_timestamp_seconds", "When a certificate the edge serves expires (Unix time), by listener, name (its first DNS name, else its common name) and subject.", []string{"listener", "name", "subject"}, nil),
		udpDropsDesc:      prometheus.NewDesc("sluice_edge_udp_datagrams_dropped_total", "Public datagrams a UDP tunnel's port dropped at the edge's bounds, by reason (flow_limit, no_agent, policy, byte_budget, flow_queue).", []string{"tunnel", "url", "reason"}, nil),
		hosts:             map[string]struct{}{},
	}
	if tc := s.cfg.TLS; tc != nil {
		m.addCertSource("agents", func() []*x509.Certificate { return leaves(tc.Certificates) })
	}
	for _, c := range []prometheus.Collector{m.requests, m.grpc, m.durations, m.refused, m.policy, m} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// watchHTTPS exports the expiry of the HTTPS ingress's certificates: the
// static one, or each one the ACME issuer hands out (remembered per name,
// and forgotten once the name is no longer routed).
func (m *edgeMetrics) watchHTTPS(tc *tls.Config) {
	if len(tc.Certificates) > 0 {
		certs := tc.Certificates
		m.addCertSource("https", func() []*x509.Certificate { return leaves(certs) })
	}
	get := tc.GetCertificate
	if get == nil {
		return
	}
	var mu sync.Mutex
	issued := map[string]*x509.Certificate{}
	tc.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		c, err := get(hello)
		if err == nil && c != nil {
			if l := leaves([]tls.Certificate{*c}); len(l) == 1 {
				mu.Lock()
				issued[strings.ToLower(hello.ServerName)] = l[0]
				mu.Unlock()
			}
		}
		return c, err
	}
	m.addCertSource("https", func() []*x509.Certificate {
		mu.Lock()
		defer mu.Unlock()
		var out []*x509.Certificate
		for name, leaf := range issued {
			if _, ok := m.s.reg.host(name); !ok {
				delete(issued, name)
				continue
			}
			out = append(out, leaf)
		}
		return out
	})
}

func leaves(certs []tls.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	for _, c := range certs {
		if c.Leaf != nil {
			out = append(out, c.Leaf)
		} else if len(c.Certificate) > 0 {
			if leaf, err := x509.ParseCertificate(c.Certificate[0]); err == nil {
				out = append(out, leaf)
			}
		}
	}
	return out
}

func (m *edgeMetrics) addCertSource(listener string, leaves func() []*x509.Certificate) {
	m.mu.Lock()
	m.certs = append(m.certs, certSource{listener, leaves})
	m.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (m *edgeMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.sessionsDesc, m.agentsDesc, m.tunnelsDesc, m.streamsDesc, m.rttDesc, m.tunnelRTTDesc, m.bytesDesc, m.tunnelStreamsDesc, m.tunnelOpenedDesc, m.certDesc, m.udpDropsDesc} {
		ch <- d
	}
}

type tunnelSeries struct {
	name, url, kind string
	in, out         int64
	streams         int64
	opened          uint64
	rtt             time.Duration
}

// Collect implements prometheus.Collector: it reads the live sessions.
func (m *edgeMetrics) Collect(ch chan<- prometheus.Metric) {
	var sessions, streams int
	owners := map[ownerID]struct{}{}
	kinds := map[control.Kind]int{control.KindHTTP: 0, control.KindTCP: 0}
	// Keyed by URL: while a reconnected agent takes its tunnel over from
	// a session not yet known dead, two tunnels share one URL, and a
	// registry refuses duplicate series.
	series := map[string]*tunnelSeries{}
	var order []string
	buckets := make(map[float64]uint64, len(rttBuckets))
	var rttSum float64
	m.s.sessions.Range(func(k, _ any) bool {
		ac := k.(*agentConn)
		sessions++
		streams += ac.sess.NumStreams()
		owners[ac.owner] = struct{}{}
		rtt := ac.sess.RTT()
		rttSum += rtt.Seconds()
		for _, b := range rttBuckets {
			if rtt.Seconds() <= b {
				buckets[b]++
			}
		}
		ac.mu.Lock()
		tunnels := append([]*tunnel(nil), ac.tunnels...)
		ac.mu.Unlock()
		for _, t := range tunnels {
			kinds[t.kind]++
			ts := series[t.url]
			if ts == nil {
				ts = &tunnelSeries{name: t.name, url: t.url, kind: string(t.kind)}
				series[t.url] = ts
				order = append(order, t.url)
			}
			ts.in += t.meter.AToB.Load()
			ts.out += t.meter.BToA.Load()
			ts.streams += t.streams.Load()
			ts.opened += t.opened.Load()
			ts.rtt = max(ts.rtt, rtt)
		}
		return true
	})
	ch <- prometheus.MustNewConstMetric(m.sessionsDesc, prometheus.GaugeValue, float64(sessions))
	ch <- prometheus.MustNewConstMetric(m.agentsDesc, prometheus.GaugeValue, float64(len(owners)))
	ch <- prometheus.MustNewConstMetric(m.streamsDesc, prometheus.GaugeValue, float64(streams))
	for k, n := range kinds {
		ch <- prometheus.MustNewConstMetric(m.tunnelsDesc, prometheus.GaugeValue, float64(n), string(k))
	}
	ch <- prometheus.MustNewConstHistogram(m.rttDesc, uint64(sessions), rttSum, buckets)
	for _, u := range order {
		ts := series[u]
		ch <- prometheus.MustNewConstMetric(m.bytesDesc, prometheus.CounterValue, float64(ts.in), ts.name, ts.url, ts.kind, "in")
		ch <- prometheus.MustNewConstMetric(m.bytesDesc, prometheus.CounterValue, float64(ts.out), ts.name, ts.url, ts.kind, "out")
		ch <- prometheus.MustNewConstMetric(m.tunnelStreamsDesc, prometheus.GaugeValue, float64(ts.streams), ts.name, ts.url)
		ch <- prometheus.MustNewConstMetric(m.tunnelOpenedDesc, prometheus.CounterValue, float64(ts.opened), ts.name, ts.url)
		ch <- prometheus.MustNewConstMetric(m.tunnelRTTDesc, prometheus.GaugeValue, ts.rtt.Seconds(), ts.name, ts.url)
	}
	m.mu.Lock()
	certs := append([]certSource(nil), m.certs...)
	m.mu.Unlock()
	seen := map[[3]string]bool{}
	for _, cs := range certs {
		for _, leaf := range cs.leaves() {
			// ACME certificates often have an empty subject: the name tells
			// them apart.
			key := [3]string{cs.listener, certName(leaf), leaf.Subject.String()}
			if seen[key] {
				continue
			}
			seen[key] = true
			ch <- prometheus.MustNewConstMetric(m.certDesc, prometheus.GaugeValue, float64(leaf.NotAfter.Unix()), key[0], key[1], key[2])
		}
	}
	drops := func(name, url string, u *udpIngress) {
		for r := range numDropReasons {
			ch <- prometheus.MustNewConstMetric(m.udpDropsDesc, prometheus.CounterValue, float64(u.drops.n[r].Load()), name, url, r.String())
		}
	}
	m.s.reg.udp.Range(func(_, v any) bool {
		ep := v.(*endpoint)
		drops(ep.name, ep.url, ep.udp)
		return true
	})
	if m.s.fleet != nil {
		// The ports this edge mirrors for another edge drop datagrams
		// here too: those of sources the tunnel's policy refused.
		m.s.fleet.mirrorDrops(drops)
	}
	m.sweep()
}

// certName is the name a certificate is for: its first DNS name, else its
// common name.
func certName(leaf *x509.Certificate) string {
	if len(leaf.DNSNames) > 0 {
		return leaf.DNSNames[0]
	}
	return leaf.Subject.CommonName
}

// sweep removes the per-request series of tunnels whose hostname is neither
// routed nor leased: a tunnel that went away keeps its series through its
// lease's grace (it may come back) and loses them after, so the number of
// series stays bounded by the tunnels the edge knows.
func (m *edgeMetrics) sweep() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for host := range m.hosts {
		if _, ok := m.s.reg.host(host); ok || m.s.reg.isReserved(host) {
			continue
		}
		delete(m.hosts, host)
		m.forgetHost(host)
	}
}

// observeRequest counts one proxied request of t.
func (m *edgeMetrics) observeRequest(t *tunnel, code int, d time.Duration) {
	m.track(t.host)
	m.requests.WithLabelValues(t.host, observe.StatusClass(code)).Inc()
	m.durations.WithLabelValues(t.host).Observe(d.Seconds())
}

// track notes that host has per-request series, for sweep.
func (m *edgeMetrics) track(host string) {
	m.mu.Lock()
	m.hosts[host] = struct{}{}
	m.mu.Unlock()
}

// forgetHost drops the per-request series of a tunnel's hostname.
func (m *edgeMetrics) forgetHost(host string) {
	m.requests.DeletePartialMatch(prometheus.Labels{"tunnel": host})
	m.grpc.DeletePartialMatch(prometheus.Labels{"tunnel": host})
	m.durations.DeleteLabelValues(host)
}

func (m *edgeMetrics) refuse(code string) {
	m.refused.WithLabelValues(code).Inc()
}

// initObservability sets up what Config.Metrics and Config.Admin ask for.
func (s *Server) initObservability() error {
	if s.cfg.Metrics != nil {
		m, err := newEdgeMetrics(s, s.cfg.Metrics)
		if err != nil {
			return fmt.Errorf("server: registering metrics: %w", err)
		}
		s.metrics = m
		if s.cfg.FleetListen != "" {
			if err := s.cfg.Metrics.Register(fleetCollector{s}); err != nil {
				return fmt.Errorf("server: registering fleet metrics: %w", err)
			}
		}
	}
	s.metering = s.cfg.Metrics != nil || s.cfg.Admin != ""
	return nil
}

// meterOf is the meter relays of t count into, nil when nobody reads it, so
// an edge without metrics or admin pays nothing for counting.
func (s *Server) meterOf(t *tunnel) *relay.Meter {
	if !s.metering {
		return nil
	}
	return &t.meter
}

func (s *Server) countRefusal(code string) {
	if s.metrics != nil {
		s.metrics.refuse(code)
	}
}

// observation is one proxied request being observed: the proxy writes its
// response through rec.
type observation struct {
	rec   observe.StatusRecorder
	start time.Time
}

// startObservation starts observing one proxied request; observed counts
// it.
func startObservation(w http.ResponseWriter) *observation {
	return &observation{rec: observe.StatusRecorder{ResponseWriter: w}, start: time.Now()}
}

// observed counts the request o observed, by status class for the console
// and the metrics, and by duration for the metrics.
func (s *Server) observed(o *observation, r *http.Request, t *tunnel) {
	code := o.rec.Status
	if code == 0 {
		// Nothing written: an upgrade whose 101 went out on a connection
		// hijacked past the recorder, or an empty 200.
		code = http.StatusOK
		if r.Header.Get("Upgrade") != "" {
			code = http.StatusSwitchingProtocols
		}
	}
	if c := code / 100; c >= 1 && c <= 5 {
		t.requests[c-1].Add(1)
	}
	m := s.metrics
	if m == nil {
		return
	}
	m.observeRequest(t, code, time.Since(o.start))
	if isGRPC(r) {
		m.grpc.WithLabelValues(t.host, grpcOutcome(o.rec.Header())).Inc()
	}
}

// grpcCodeNames are the gRPC status codes' names, by number.
var grpcCodeNames = [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

// grpcOutcome names a proxied gRPC call's status from its grpc-status,
// which arrives as a trailer (or, trailers-only, as a header). A call whose
// response carried none failed in transport: UNKNOWN, as a client sees it.
func grpcOutcome(h http.Header) string {
	v := h.Get("Grpc-Status")
	if v == "" {
		v = h.Get(http.TrailerPrefix + "Grpc-Status")
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 && n < len(grpcCodeNames) {
		return grpcCodeNames[n]
	}
	if v != "" {
		return "other"
	}
	return "UNKNOWN"
}

// meteredConn is a stream of an HTTP tunnel's proxy pool: it counts bytes
// both ways as they move and is one of the tunnel's open streams until
// closed.
type meteredConn struct {
	*mux.Stream
	t      *tunnel
	closed atomic.Bool
}

func newMeteredConn(st *mux.Stream, t *tunnel) *meteredConn {
	t.streams.Add(1)
	return &meteredConn{Stream: st, t: t}
}

func (c *meteredConn) Read(p []byte) (int, error) {
	n, err := c.Stream.Read(p)
	c.t.meter.BToA.Add(int64(n))
	return n, err
}

func (c *meteredConn) Write(p []byte) (int, error) {
	n, err := c.Stream.Write(p)
	c.t.meter.AToB.Add(int64(n))
	return n, err
}

// WriteTo and ReadFrom hide the stream's own, which would bypass the count.
func (c *meteredConn) WriteTo(w io.Writer) (int64, error) {
	return io.Copy(w, struct{ io.Reader }{c})
}

func (c *meteredConn) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{c}, r)
}

func (c *meteredConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.t.streams.Add(-1)
	}
	return c.Stream.Close()
}

func (c *meteredConn) Reset() error {
	if c.closed.CompareAndSwap(false, true) {
		c.t.streams.Add(-1)
	}
	return c.Stream.Reset()
}
