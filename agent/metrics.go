package agent

import (
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/mux"
	"github.com/sluicehq/sluice/relay"
)

// Prometheus metrics of the agent, documented in docs/METRICS.md. As on the
// edge, state is read at scrape time (the data path pays only its meters'
// atomic adds) and events are counted as they happen; a tunnel is labelled
// by the name and URL the edge assigned it.
type agentMetrics struct {
	a *Agent

	reconnects *prometheus.CounterVec
	failures   *prometheus.CounterVec
	requests   *prometheus.CounterVec
	durations  *prometheus.HistogramVec
	// policyRefused counts the clients the edge's policy answered itself.
	policyRefused *prometheus.CounterVec

	connectedDesc, rttDesc, streamsDesc, tunnelsDesc, bytesDesc *prometheus.Desc
}

var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

func newAgentMetrics(a *Agent, reg prometheus.Registerer) (*agentMetrics, error) {
	m := &agentMetrics{
		a: a,
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_agent_reconnects_total",
			Help: "Sessions with the edge that ended and were redialled, by cause.",
		}, []string{"cause"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_agent_connect_failures_total",
			Help: "Attempts to set up a session with the edge that failed, by cause.",
		}, []string{"cause"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_agent_http_requests_total",
			Help: "HTTP requests the agent forwarded to the local service, by tunnel and status class (1xx..5xx).",
		}, []string{"tunnel", "class"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_agent_http_request_duration_seconds",
			Help:    "Time the local service took to answer a forwarded HTTP request, body included, by tunnel.",
			Buckets: durationBuckets,
		}, []string{"tunnel"}),
		policyRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_agent_policy_refused_total",
			Help: "Requests, connections and datagrams the edge's traffic policy answered or refused itself (they never reached the agent), by tunnel, rule source, rule and action.",
		}, []string{"tunnel", "source", "rule", "action"}),
		connectedDesc: prometheus.NewDesc("sluice_agent_session_connected", "1 while a session with the edge is up and its tunnels are registered.", nil, nil),
		rttDesc:       prometheus.NewDesc("sluice_agent_session_rtt_seconds", "Latest keepalive round trip to the edge.", nil, nil),
		streamsDesc:   prometheus.NewDesc("sluice_agent_streams_open", "Mux streams open on the session with the edge.", nil, nil),
		tunnelsDesc:   prometheus.NewDesc("sluice_agent_tunnels", "Tunnels registered on the current session, by kind.", []string{"kind"}, nil),
		bytesDesc:     prometheus.NewDesc("sluice_agent_tunnel_bytes_total", "Bytes a tunnel carried, counted while connections are open; in is from public clients toward the local service, out is back.", []string{"tunnel", "url", "direction"}, nil),
	}
	for _, c := range []prometheus.Collector{m.reconnects, m.failures, m.requests, m.durations, m.policyRefused, m} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Describe implements prometheus.Collector.
func (m *agentMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.connectedDesc, m.rttDesc, m.streamsDesc, m.tunnelsDesc, m.bytesDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *agentMetrics) Collect(ch chan<- prometheus.Metric) {
	ls := m.a.live.Load()
	var connected, rtt float64
	var streams int
	if ls != nil {
		connected, rtt, streams = 1, ls.sess.RTT().Seconds(), ls.sess.NumStreams()
	}
	ch <- prometheus.MustNewConstMetric(m.connectedDesc, prometheus.GaugeValue, connected)
	ch <- prometheus.MustNewConstMetric(m.rttDesc, prometheus.GaugeValue, rtt)
	ch <- prometheus.MustNewConstMetric(m.streamsDesc, prometheus.GaugeValue, float64(streams))
	kinds := map[control.Kind]int{control.KindHTTP: 0, control.KindTCP: 0}
	seen := map[string]bool{}
	for _, ts := range m.a.fwds {
		as := ts.assigned.Load()
		if as == nil {
			continue
		}
		if ls != nil {
			kinds[as.Kind]++
		}
		if seen[as.URL] {
			continue
		}
		seen[as.URL] = true
		ch <- prometheus.MustNewConstMetric(m.bytesDesc, prometheus.CounterValue, float64(ts.meter.AToB.Load()), as.Name, as.URL, "in")
		ch <- prometheus.MustNewConstMetric(m.bytesDesc, prometheus.CounterValue, float64(ts.meter.BToA.Load()), as.Name, as.URL, "out")
	}
	for k, n := range kinds {
		ch <- prometheus.MustNewConstMetric(m.tunnelsDesc, prometheus.GaugeValue, float64(n), string(k))
	}
}

// sessionLostCause names why a session with the edge ended.
func sessionLostCause(err error) string {
	var re *mux.RemoteError
	switch {
	case errors.Is(err, mux.ErrKeepAliveTimeout):
		return "keepalive_timeout"
	case errors.As(err, &re):
		return "edge_error"
	case err == nil, err == mux.ErrSessionClosed, errors.Is(err, io.EOF), errors.Is(err, mux.ErrGoAway):
		// Exactly ErrSessionClosed is the agent closing it after the edge
		// ended the control stream; a failure wraps its cause instead.
		return "edge_closed"
	}
	return "network"
}

// connectFailureCause names why an attempt to connect failed.
func connectFailureCause(err error) string {
	var ce *control.Error
	var ne net.Error
	var ue x509.UnknownAuthorityError
	switch {
	case errors.As(err, &ce):
		return "refused_" + ce.Code
	case isTLSFailure(err) || errors.As(err, &ue):
		return "tls"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "network"
}

func (m *agentMetrics) lost(err error) {
	m.reconnects.WithLabelValues(sessionLostCause(err)).Inc()
}

func (m *agentMetrics) failed(err error) {
	m.failures.WithLabelValues(connectFailureCause(err)).Inc()
}

// instrument counts each request of ts by status class and duration.
func (m *agentMetrics) instrument(ts *tunnelState, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		code := rec.status
		if code == 0 {
			code = http.StatusOK
		}
		name := ts.label()
		m.requests.WithLabelValues(name, statusClass(code)).Inc()
		m.durations.WithLabelValues(name).Observe(time.Since(start).Seconds())
	})
}

func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code/100) + "xx"
}

// label is the tunnel's name as the edge assigned it.
func (ts *tunnelState) label() string {
	if as := ts.assigned.Load(); as != nil {
		return as.Name
	}
	return ts.cfg.Name
}

// wrapsHTTP reports whether Config.HTTPMiddleware applies to t: every HTTP
// tunnel except one that must pipe bytes, because it starts each connection
// to its local service with a PROXY protocol header.
func wrapsHTTP(cfg Config, t Tunnel) bool {
	return cfg.HTTPMiddleware != nil && t.Kind == control.KindHTTP && t.ProxyProtocol == ""
}

// initObservability sets up Config.Metrics and wraps each HTTP tunnel's
// handler in Config.HTTPMiddleware and the request metrics.
func (a *Agent) initObservability() error {
	if a.cfg.Metrics != nil {
		m, err := newAgentMetrics(a, a.cfg.Metrics)
		if err != nil {
			return err
		}
		a.metrics = m
	}
	for _, ts := range a.fwds {
		if ts.http == nil {
			continue
		}
		h := ts.http.srv.Handler
		if wrapsHTTP(a.cfg, ts.cfg) {
			h = a.cfg.HTTPMiddleware(ts.index, h)
		}
		if a.metrics != nil {
			h = a.metrics.instrument(ts, h)
		}
		ts.http.srv.Handler = h
	}
	return nil
}

// meterOf is the meter ts's connections count into, nil when metrics are
// off, so an agent without them pays nothing for counting.
func (a *Agent) meterOf(ts *tunnelState) *relay.Meter {
	if a.metrics == nil {
		return nil
	}
	return &ts.meter
}

// setLive records the session the agent serves now (nil: none), and why the
// previous one ended.
func (a *Agent) setLive(ls *liveSession) {
	old := a.live.Swap(ls)
	if ls == nil && old != nil && a.metrics != nil {
		a.metrics.lost(old.sess.Err())
	}
}

func (a *Agent) connectFailed(err error) {
	if a.metrics != nil {
		a.metrics.failed(err)
	}
}

// Read, Write and WriteTo count into the meter when the agent meters.
func (c *publicConn) Read(p []byte) (int, error) {
	n, err := c.Stream.Read(p)
	if c.meter != nil {
		c.meter.AToB.Add(int64(n))
	}
	return n, err
}

func (c *publicConn) Write(p []byte) (int, error) {
	n, err := c.Stream.Write(p)
	if c.meter != nil {
		c.meter.BToA.Add(int64(n))
	}
	return n, err
}

func (c *publicConn) WriteTo(w io.Writer) (int64, error) {
	if c.meter != nil {
		w = &countingWriter{w: w, n: &c.meter.AToB}
	}
	return c.Stream.WriteTo(w)
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}
