package systems

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/bench/proc"
	"github.com/sluicehq/sluice/bench/target"
)

// FleetSecret is the fleet secret of the harness's fleets.
const FleetSecret = "sluice-bench-fleet-secret-0123456789"

// Fleet is several `sluice server` processes in one fleet, as an operator
// runs them: each with its embedded store node (or all on one external
// NATS), on loopback.
type Fleet struct {
	// Agents and HTTP are each edge's agent and public HTTP addresses.
	Agents, HTTP []string
	Procs        []*proc.Proc // the edges, then any agent started on them
	bin          string
}

// FleetOptions say how a fleet is started.
type FleetOptions struct {
	Edges int
	// NATS, when set, is an external NATS URL every edge keeps its leases
	// in instead of embedded store nodes.
	NATS string
	// Owners is how many further tokens (owners) the edges accept, so
	// that many agents are not one owner, held to one owner's limits.
	Owners int
}

// StartFleet starts opt.Edges sluice edges in one fleet (sluice only) and
// returns once every one accepts agents.
func StartFleet(ctx context.Context, s System, env Env, opt FleetOptions) (*Fleet, error) {
	ss, ok := s.(*sluiceSystem)
	if !ok || ss.tls || ss.inspect {
		return nil, fmt.Errorf("a fleet runs %s only", "sluice")
	}
	if err := ss.Available(); err != nil {
		return nil, err
	}
	fl := &Fleet{bin: ss.bin}
	links := make([]string, opt.Edges)
	for i := range links {
		p, err := freePortPair()
		if err != nil {
			return nil, err
		}
		links[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	for i := range opt.Edges {
		ports, err := freePorts(2)
		if err != nil {
			fl.Stop()
			return nil, err
		}
		ctrl := fmt.Sprintf("127.0.0.1:%d", ports[0])
		args := []string{"server", "--listen", ctrl, "--http", fmt.Sprintf("127.0.0.1:%d", ports[1]), "--domain", "localhost",
			"--token", sluiceToken, "--log-level", "error", "--insecure", "--state-dir", filepath.Join(env.Dir, "edge"+strconv.Itoa(i)),
			"--fleet-listen", links[i], "--fleet-secret", FleetSecret}
		for o := range opt.Owners {
			args = append(args, "--token", fl.Token(o))
		}
		if opt.NATS != "" {
			args = append(args, "--nats", opt.NATS)
		} else {
			args = append(args, "--fleet-join", strings.Join(links, ","))
		}
		p, err := proc.Start("sluice edge "+strconv.Itoa(i), true, env.Dir, ss.bin, args, nil)
		if err != nil {
			fl.Stop()
			return nil, err
		}
		fl.Procs = append(fl.Procs, p)
		fl.Agents = append(fl.Agents, ctrl)
		fl.HTTP = append(fl.HTTP, fmt.Sprintf("127.0.0.1:%d", ports[1]))
	}
	// The edges wait for a majority of their store nodes: they listen once
	// the fleet has formed.
	for _, a := range fl.Agents {
		if err := waitListening(ctx, a, fl.Procs); err != nil {
			fl.Stop()
			return nil, err
		}
	}
	return fl, nil
}

// StartHTTPAgent starts `sluice http` for env's target HTTP service on edge
// i only, under target.HTTPHostName.
func (fl *Fleet) StartHTTPAgent(env Env, i int) error {
	_, tport, _ := net.SplitHostPort(env.TargetHTTP)
	args := []string{"http", tport, "--server", fl.Agents[i], "--token", sluiceToken, "--name", strings.TrimSuffix(target.HTTPHostName, ".localhost"),
		"--log-requests=false", "--inspect=false", "--log-level", "error", "--insecure",
		// One session: the other edges must forward to it.
		"--sessions", "1"}
	p, err := proc.Start("sluice http agent", false, env.Dir, fl.bin, args, nil)
	if err != nil {
		return err
	}
	fl.Procs = append(fl.Procs, p)
	return nil
}

// Token is the token of the fleet's further owner i (FleetOptions.Owners).
func (fl *Fleet) Token(i int) string { return sluiceToken + "-" + strconv.Itoa(i) }

// Alive reports the first process that exited, with its log.
func (fl *Fleet) Alive() error {
	for _, p := range fl.Procs {
		if done, err := p.Exited(); done {
			return fmt.Errorf("%s exited (%v); last log lines:\n%s", p.Name, err, p.LogTail(8))
		}
	}
	return nil
}

// Stop ends every process of the fleet.
func (fl *Fleet) Stop() {
	for i := len(fl.Procs) - 1; i >= 0; i-- {
		fl.Procs[i].Stop()
	}
}

// freePortPair finds a loopback port p with p+1 free too: an edge's store
// routes listen beside its fleet address.
func freePortPair() (int, error) {
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1))
		ln.Close()
		if err == nil {
			ln2.Close()
			return p, nil
		}
	}
	return 0, errors.New("no two neighbouring free loopback ports found")
}
