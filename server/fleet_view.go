package server

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"
)

// AdminFleet is an edge's view of its fleet in the admin listing.
type AdminFleet struct {
	// Edge is this edge's ID in the fleet (new at every start).
	Edge    string             `json:"edge"`
	Members []AdminFleetMember `json:"members"`
	// Leases lists every lease of the fleet with the edges that hold a
	// session serving it: which edge has which tunnels' agents.
	Leases []AdminFleetLease `json:"leases"`
	// ForwardedOut and ForwardedIn count the HTTP requests this edge
	// forwarded to each peer edge and took from each, by edge ID.
	ForwardedOut map[string]uint64 `json:"forwarded_out"`
	ForwardedIn  map[string]uint64 `json:"forwarded_in"`
	// StreamsOut and StreamsIn count the link streams opened to and from
	// each peer: one per forwarded TCP connection, one per kept-alive
	// stream of HTTP requests.
	StreamsOut map[string]uint64 `json:"streams_out"`
	StreamsIn  map[string]uint64 `json:"streams_in"`
	// StreamsOpen counts the streams open now on the links this edge
	// dialed, by peer: busy and idle kept-alive ones together.
	StreamsOpen map[string]int  `json:"streams_open"`
	Store       AdminFleetStore `json:"store"`
}

// AdminFleetMember is one edge whose membership is current.
type AdminFleetMember struct {
	Edge   string `json:"edge"`
	Name   string `json:"name"`
	Link   string `json:"link"`
	Agents string `json:"agents"`
}

// AdminFleetLease is one lease and its holders.
type AdminFleetLease struct {
	Key     string   `json:"key"`
	Holders []string `json:"holders"`
}

// AdminFleetStore is this edge's use of the shared store.
type AdminFleetStore struct {
	Connected      bool    `json:"connected"`
	Operations     uint64  `json:"operations"`
	Errors         uint64  `json:"errors"`
	MeanLatencyMs  float64 `json:"mean_latency_ms"`
	LeasesKnown    int     `json:"leases_known"`
	MembersCurrent int     `json:"members_current"`
}

func (f *edgeFleet) view() *AdminFleet {
	v := &AdminFleet{Edge: f.store.ID(), Members: []AdminFleetMember{}, Leases: []AdminFleetLease{}}
	for _, m := range f.store.Members() {
		v.Members = append(v.Members, AdminFleetMember{Edge: m.ID, Name: m.Name, Link: m.Link, Agents: m.Info["agents"]})
	}
	for _, l := range f.store.Leases() {
		h := append([]string{}, l.Holders...)
		sort.Strings(h)
		v.Leases = append(v.Leases, AdminFleetLease{Key: l.Key, Holders: h})
	}
	v.ForwardedOut, v.ForwardedIn = f.reqOut.snapshot(), f.reqIn.snapshot()
	v.StreamsOut, v.StreamsIn = f.links.Forwarded()
	v.StreamsOpen = f.links.StreamsOpen()
	st := f.store.Stats()
	v.Store = AdminFleetStore{Connected: st.Connected, Operations: st.Ops, Errors: st.Errors,
		LeasesKnown: len(v.Leases), MembersCurrent: len(v.Members)}
	if st.Ops > 0 {
		v.Store.MeanLatencyMs = st.Latency.Seconds() * 1000 / float64(st.Ops)
	}
	return v
}

// fleetCollector exports the fleet view to Prometheus.
type fleetCollector struct{ s *Server }

var (
	fleetMembersDesc  = prometheus.NewDesc("sluice_edge_fleet_members", "Edges of the fleet whose membership is current, this one included.", nil, nil)
	fleetMemberDesc   = prometheus.NewDesc("sluice_edge_fleet_member_info", "One series per current member of the fleet.", []string{"edge", "name", "link"}, nil)
	fleetHeldDesc     = prometheus.NewDesc("sluice_edge_fleet_leases_held", "Leases of the fleet each edge holds a session for.", []string{"edge"}, nil)
	fleetStreamsDesc  = prometheus.NewDesc("sluice_edge_fleet_forwarded_streams_total", "Link streams opened between this edge and a peer edge, by direction (out: to the peer, in: from it): one per forwarded TCP connection, one per kept-alive stream of HTTP requests.", []string{"peer", "direction"}, nil)
	fleetRequestsDesc = prometheus.NewDesc("sluice_edge_fleet_forwarded_requests_total", "HTTP requests forwarded between this edge and a peer edge, by direction (out: sent to the peer, in: served for it).", []string{"peer", "direction"}, nil)
	fleetOpsDesc      = prometheus.NewDesc("sluice_edge_fleet_store_operations_total", "Operations on the fleet's store made by this edge.", nil, nil)
	fleetErrorsDesc   = prometheus.NewDesc("sluice_edge_fleet_store_errors_total", "Store operations that failed (not counting lost compare-and-set races).", nil, nil)
	fleetLatencyDesc  = prometheus.NewDesc("sluice_edge_fleet_store_latency_seconds_total", "Time spent in store operations; divide by the operations for the mean.", nil, nil)
	fleetUpDesc       = prometheus.NewDesc("sluice_edge_fleet_store_connected", "1 while the store answers; 0 while the edge serves only what it knows.", nil, nil)
)

func (c fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{fleetMembersDesc, fleetMemberDesc, fleetHeldDesc, fleetStreamsDesc, fleetRequestsDesc, fleetOpsDesc, fleetErrorsDesc, fleetLatencyDesc, fleetUpDesc} {
		ch <- d
	}
}

func (c fleetCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.s.fleet
	if f == nil {
		return
	}
	members := f.store.Members()
	ch <- prometheus.MustNewConstMetric(fleetMembersDesc, prometheus.GaugeValue, float64(len(members)))
	held := map[string]int{}
	for _, m := range members {
		ch <- prometheus.MustNewConstMetric(fleetMemberDesc, prometheus.GaugeValue, 1, m.ID, m.Name, m.Link)
		held[m.ID] = 0
	}
	for _, l := range f.store.Leases() {
		for _, h := range l.Holders {
			if _, ok := held[h]; ok {
				held[h]++
			}
		}
	}
	for id, n := range held {
		ch <- prometheus.MustNewConstMetric(fleetHeldDesc, prometheus.GaugeValue, float64(n), id)
	}
	out, in := f.links.Forwarded()
	pairs(ch, fleetStreamsDesc, out, in)
	pairs(ch, fleetRequestsDesc, f.reqOut.snapshot(), f.reqIn.snapshot())
	st := f.store.Stats()
	ch <- prometheus.MustNewConstMetric(fleetOpsDesc, prometheus.CounterValue, float64(st.Ops))
	ch <- prometheus.MustNewConstMetric(fleetErrorsDesc, prometheus.CounterValue, float64(st.Errors))
	ch <- prometheus.MustNewConstMetric(fleetLatencyDesc, prometheus.CounterValue, st.Latency.Seconds())
	up := 0.0
	if st.Connected {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(fleetUpDesc, prometheus.GaugeValue, up)
}

// pairs exports counts by peer edge and direction.
func pairs(ch chan<- prometheus.Metric, d *prometheus.Desc, out, in map[string]uint64) {
	for peer, n := range out {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n), peer, "out")
	}
	for peer, n := range in {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n), peer, "in")
	}
}
