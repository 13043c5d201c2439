package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/sluicehq/sluice/server/console"
)

// The edge's admin address: the operator's console and a JSON listing of
// the agents connected, their tunnels and the totals, on an address of its
// own and behind the admin token, since it shows who is connected from
// where and can revoke tokens.

// AdminStatus is what GET /api/status on the admin address returns.
type AdminStatus struct {
	Time    time.Time     `json:"time"`
	Agents  []AdminAgent  `json:"agents"`
	Tunnels []AdminTunnel `json:"tunnels"`
	Totals  AdminTotals   `json:"totals"`
	// Fleet is this edge's view of its fleet; absent on a single edge.
	Fleet *AdminFleet `json:"fleet,omitempty"`
}

// AdminAgent is one connected agent session.
type AdminAgent struct {
	Session string `json:"session"`
	// Owner names who the agent's token belongs to: the owner from the
	// tokens file, else "token:" and the first bytes of the token's hash
	// (never the token itself).
	Owner          string    `json:"owner"`
	RemoteAddr     string    `json:"remote_addr"`
	ConnectedSince time.Time `json:"connected_since"`
	// Software is what the agent says it is: its program and version,
	// e.g. "sluice-agent/v1.2.3" ("+dirty" when built from a modified tree).
	Software  string   `json:"software"`
	RTTMillis float64  `json:"rtt_ms"`
	Streams   int      `json:"streams"`
	Tunnels   []string `json:"tunnels"` // their URLs
}

// AdminTunnel is one tunnel online.
type AdminTunnel struct {
	URL     string `json:"url"`
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Session string `json:"session"`
	// BytesIn and BytesOut are only counted while the edge is metering
	// (admin or metrics on); in is from public clients toward the agent.
	BytesIn     int64 `json:"bytes_in"`
	BytesOut    int64 `json:"bytes_out"`
	OpenStreams int64 `json:"open_streams"`
	// Policy summarises the traffic policy's rules by layer, phase, name
	// and action type; never their secrets.
	Policy string `json:"policy,omitempty"`
}

// AdminTotals sums the listing.
type AdminTotals struct {
	Agents   int   `json:"agents"`
	Sessions int   `json:"sessions"`
	Tunnels  int   `json:"tunnels"`
	Streams  int   `json:"streams"`
	BytesIn  int64 `json:"bytes_in"`
	BytesOut int64 `json:"bytes_out"`
}

// Status returns the admin listing: agents by connection time, tunnels by
// URL.
func (s *Server) Status() AdminStatus {
	st := AdminStatus{Time: time.Now().UTC(), Agents: []AdminAgent{}, Tunnels: []AdminTunnel{}}
	owners := map[ownerID]struct{}{}
	s.sessions.Range(func(k, _ any) bool {
		ac := k.(*agentConn)
		owners[ac.owner] = struct{}{}
		a := AdminAgent{
			Session: ac.id, Owner: ac.currentRule().ownerName, RemoteAddr: ac.remote,
			ConnectedSince: ac.since.UTC(), Software: ac.software, RTTMillis: float64(ac.sess.RTT().Microseconds()) / 1000,
			Streams: ac.sess.NumStreams(), Tunnels: []string{},
		}
		ac.mu.Lock()
		tunnels := append([]*tunnel(nil), ac.tunnels...)
		ac.mu.Unlock()
		for _, t := range tunnels {
			a.Tunnels = append(a.Tunnels, t.url)
			at := AdminTunnel{
				URL: t.url, Kind: string(t.kind), Name: t.name, Session: ac.id,
				BytesIn: t.meter.AToB.Load(), BytesOut: t.meter.BToA.Load(), OpenStreams: t.streams.Load(),
				Policy: t.policySummary(),
			}
			st.Tunnels = append(st.Tunnels, at)
			st.Totals.BytesIn += at.BytesIn
			st.Totals.BytesOut += at.BytesOut
		}
		st.Agents = append(st.Agents, a)
		st.Totals.Streams += a.Streams
		return true
	})
	sort.Slice(st.Agents, func(i, j int) bool { return st.Agents[i].ConnectedSince.Before(st.Agents[j].ConnectedSince) })
	sort.Slice(st.Tunnels, func(i, j int) bool { return st.Tunnels[i].URL < st.Tunnels[j].URL })
	st.Totals.Agents = len(owners)
	st.Totals.Sessions = len(st.Agents)
	st.Totals.Tunnels = len(st.Tunnels)
	if s.fleet != nil {
		st.Fleet = s.fleet.view()
	}
	return st
}

type adminServer struct {
	ln      net.Listener
	srv     *http.Server
	console *console.Console
}

// AdminAddr returns the admin listener's address, or nil when there is none.
func (s *Server) AdminAddr() net.Addr {
	if s.admin == nil {
		return nil
	}
	return s.admin.ln.Addr()
}

// openAdmin opens the admin listener: the operator's console (see package
// console) and the JSON status behind the same sign-in. It runs last in
// New, so it also hooks the metrics onto the HTTPS ingress's certificates.
func (s *Server) openAdmin() error {
	if s.metrics != nil && s.https != nil {
		s.metrics.watchHTTPS(s.https.srv.TLSConfig)
	}
	if s.cfg.Admin == "" {
		return nil
	}
	s.con = newConsoleEdge(s)
	s.warn.record = func(src, msg string) { s.consoleRefused(refusalKind(msg), msg, src) }
	con, err := console.New(console.Config{Token: s.cfg.AdminToken, Edges: []console.Backend{s.con}, Logger: s.log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.Admin)
	if err != nil {
		return fmt.Errorf("server: listen for the admin view on %s: %w (pick another admin port)", s.cfg.Admin, err)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		s.log.Warn("the admin view is reachable from the network: it lists every agent's address; bind it to 127.0.0.1 unless that is intended", "addr", ln.Addr().String())
	}
	mux := http.NewServeMux()
	mux.Handle("GET /api/status", con.Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(s.Status())
	})))
	mux.Handle("/", con.Handler())
	s.admin = &adminServer{ln: ln, console: con,
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slogErrorLog(s.log)}}
	return nil
}

func (s *Server) serveAdmin(ctx context.Context, errc chan<- error) {
	if s.admin == nil {
		return
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.admin.console.Run(ctx)
	}()
	go func() {
		defer s.wg.Done()
		err := s.admin.srv.Serve(s.admin.ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		errc <- err
	}()
}

// closeListeners closes what New opened, when a later step of New fails.
func (s *Server) closeListeners() {
	s.ctrlLn.Close()
	if s.httpLn != nil {
		s.httpLn.Close()
	}
	if s.https != nil {
		s.https.ln.Close()
	}
}

func (s *Server) closeAdmin() {
	if s.admin != nil {
		s.admin.srv.Close()
	}
}
