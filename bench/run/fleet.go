package run

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	natsd "github.com/nats-io/nats-server/v2/server"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/bench/link"
	"github.com/sluicehq/sluice/bench/load"
	"github.com/sluicehq/sluice/bench/proc"
	"github.com/sluicehq/sluice/bench/results"
	"github.com/sluicehq/sluice/bench/systems"
	"github.com/sluicehq/sluice/bench/target"
	"github.com/sluicehq/sluice/control"
)

// fleetEdges is how many edges the fleet scenario runs: the smallest
// fleet whose store keeps three replicas.
const fleetEdges = 3

// runFleet measures a fleet of three sluice edges, fresh each round: an
// HTTP agent on edge 0, and GETs through edge 0 (the agent's own) and
// through edge 1 (which forwards them to edge 0), interleaved; then agents
// registering names across all three edges, first with the edges' embedded
// store, then with an external NATS behind the harness's link.
func (r *Runner) runFleet(ctx context.Context, s systems.System, round int, tag string) {
	p := r.Params
	tag += " fleet"
	env := r.env(s.Name()+"-fleet", round)
	r.Progress.Begin(tag+" start", 0, "")
	fl, err := systems.StartFleet(ctx, s, env, systems.FleetOptions{Edges: fleetEdges, Owners: p.FleetAgents})
	if err != nil {
		r.fail(tag+" start", err)
		return
	}
	defer fl.Stop()
	// The store settles (stream leaders, first heartbeats) before the
	// idle reading.
	time.Sleep(time.Second)
	if kb, err := proc.RSSKB(fl.Procs[1].PID()); err == nil {
		r.add(results.MFleetEdgeIdle, s.Name(), float64(kb))
	}
	if err := fl.StartHTTPAgent(env, 0); err != nil {
		r.fail(tag+" start", err)
		return
	}
	host := target.HTTPHostName
	for i := range 2 {
		if err := waitRouted(ctx, fl, fl.HTTP[i], host, secs(p.StartupTimeoutSec)); err != nil {
			r.fail(tag+" start", err)
			return
		}
	}
	r.Progress.End("live")

	own, fwd := fl.HTTP[0], fl.HTTP[1]
	warm := secs(p.HTTPWarmupSec)
	var lat [2][2]int64 // own, fwd × P50, P99
	for i, addr := range []string{own, fwd} {
		c := r.Progress.Begin(fmt.Sprintf("%s HTTP 1 conn via edge %d", tag, i), 0, "requests")
		res, err := load.HTTP(ctx, load.HTTPTarget{Addr: addr, Host: host}, 1, warm, secs(p.FleetSec), c)
		if err != nil {
			r.fail(tag+" latency", err)
			return
		}
		h := res.Hist
		lat[i] = [2]int64{h.ValueAtQuantile(50), h.ValueAtQuantile(99)}
		r.Progress.End(fmt.Sprintf("P50 %d µs, P99 %d µs", lat[i][0], lat[i][1]))
	}
	r.add(results.MFleetOwnP50, s.Name(), float64(lat[0][0]))
	r.add(results.MFleetOwnP99, s.Name(), float64(lat[0][1]))
	r.add(results.MFleetFwdP50, s.Name(), float64(lat[1][0]))
	r.add(results.MFleetFwdP99, s.Name(), float64(lat[1][1]))
	r.add(results.MFleetExtraP50, s.Name(), float64(lat[1][0]-lat[0][0]))
	var rps [2]float64
	for i, addr := range []string{own, fwd} {
		c := r.Progress.Begin(fmt.Sprintf("%s HTTP %d conns via edge %d", tag, p.FleetConns, i), 0, "requests")
		res, err := load.HTTP(ctx, load.HTTPTarget{Addr: addr, Host: host}, p.FleetConns, warm, secs(p.FleetSec), c)
		if err != nil {
			r.fail(tag+" throughput", err)
			return
		}
		v, failed := res.RPS, res.Failed
		if failed > 0 {
			r.note("%s via edge %d: %d requests failed", tag, i, failed)
		}
		rps[i] = v
		r.Progress.End(fmt.Sprintf("%.0f req/s", v))
	}
	r.add(results.MFleetOwnRPS, s.Name(), rps[0])
	r.add(results.MFleetFwdRPS, s.Name(), rps[1])
	r.add(results.MFleetRPSRatio, s.Name(), rps[1]/rps[0])

	regs, err := r.fleetRegistrations(ctx, fl, round, tag+" registrations, embedded store")
	if err != nil {
		r.fail(tag+" registrations", err)
		return
	}
	r.add(results.MFleetRegs, s.Name(), regs)
	fl.Stop()

	far, err := r.fleetFarStore(ctx, s, round, tag)
	if err != nil {
		r.fail(tag+" registrations, far store", err)
		return
	}
	r.add(results.MFleetRegsFar, s.Name(), far)
}

// fleetFarStore starts a fleet whose edges keep their leases in one NATS
// server behind the harness's link (every store round trip takes
// FleetStoreRTTms), and measures registrations across it.
func (r *Runner) fleetFarStore(ctx context.Context, s systems.System, round int, tag string) (float64, error) {
	p := r.Params
	env := r.env(s.Name()+"-fleet-far", round)
	ns, err := natsd.NewServer(&natsd.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: filepath.Join(env.Dir, "nats"), NoLog: true, NoSigs: true})
	if err != nil {
		return 0, fmt.Errorf("external store: %w", err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		return 0, fmt.Errorf("external store did not start within 10 s")
	}
	rtt := time.Duration(p.FleetStoreRTTms * float64(time.Millisecond))
	lp, addrs, err := link.Start(env.Dir, "store link", link.Symmetric(rtt, 0), ns.Addr().String())
	if err != nil {
		return 0, err
	}
	defer lp.Stop()
	fl, err := systems.StartFleet(ctx, s, env, systems.FleetOptions{Edges: fleetEdges, NATS: "nats://" + addrs[0], Owners: p.FleetAgents})
	if err != nil {
		return 0, err
	}
	defer fl.Stop()
	return r.fleetRegistrations(ctx, fl, round, fmt.Sprintf("%s registrations, store %g ms away", tag, p.FleetStoreRTTms))
}

// fleetRegistrations runs FleetAgents agents, each its own owner, spread
// over the fleet's edges, each registering FleetTunnels HTTP names, and
// returns the names granted per second until the last one. An edge holds
// few unauthenticated connections per source address (all of these come
// from one), so at most fleetLogins agents per edge are logging in at
// once: the next starts when one has its first name.
func (r *Runner) fleetRegistrations(ctx context.Context, fl *systems.Fleet, round int, label string) (float64, error) {
	p := r.Params
	total := int64(p.FleetAgents * p.FleetTunnels)
	c := r.Progress.Begin(label, total, "names")
	var granted atomic.Int64
	all := make(chan struct{})
	actx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	logins := make([]chan struct{}, len(fl.Agents))
	for i := range logins {
		logins[i] = make(chan struct{}, fleetLogins)
	}
	start := time.Now()
	for i := range p.FleetAgents {
		edge := i % len(fl.Agents)
		select {
		case logins[edge] <- struct{}{}:
		case <-all:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		tunnels := make([]agent.Tunnel, p.FleetTunnels)
		for j := range tunnels {
			tunnels[j] = agent.Tunnel{Kind: control.KindHTTP, Name: fmt.Sprintf("reg-r%d-a%d-t%d", round, i, j), Local: "127.0.0.1:9"}
		}
		var first sync.Once
		loggedIn := func() { first.Do(func() { <-logins[edge] }) }
		a, err := agent.New(agent.Config{Server: fl.Agents[edge], Token: fl.Token(i), Tunnels: tunnels, Logger: quiet,
			OnAssigned: func(int, control.Assigned) {
				loggedIn()
				c.Add(1)
				if granted.Add(1) == total {
					close(all)
				}
			}})
		if err != nil {
			return 0, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer loggedIn()
			a.Run(actx)
		}()
	}
	select {
	case <-all:
	case <-time.After(2 * time.Minute):
		return 0, fmt.Errorf("%d of %d names granted after 2 minutes", granted.Load(), total)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	v := float64(total) / time.Since(start).Seconds()
	r.Progress.End(fmt.Sprintf("%.0f names/s", v))
	return v, nil
}

// fleetLogins is how many agents log in to one edge at once in the
// registration figure: below the edge's default of 8 unauthenticated
// connections per source address.
const fleetLogins = 6

// waitRouted waits until a GET for host through addr is answered 200.
func waitRouted(ctx context.Context, fl *systems.Fleet, addr, host string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		_, err := load.HTTP(ctx, load.HTTPTarget{Addr: addr, Host: host}, 1, 0, 50*time.Millisecond, nil)
		if err == nil {
			return nil
		}
		if aerr := fl.Alive(); aerr != nil {
			return aerr
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("HTTP route %s via %s never answered 200: %w", host, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
