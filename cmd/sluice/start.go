package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/agent"
)

// startWatch is how often `sluice start` looks at its config file.
const startWatch = time.Second

// runningTunnel is one tunnel of `sluice start` and the agent serving it.
type runningTunnel struct {
	key     string
	t       agent.Tunnel
	initial bool // from the file as it was at start-up: its failure ends start
	cancel  context.CancelFunc
	done    chan error
}

// tunnelKey identifies a tunnel by everything the file says about it: a
// changed entry is a removed tunnel and an added one.
func tunnelKey(t agent.Tunnel) string {
	return fmt.Sprintf("%s|%s|%s|%d|%s|%t|%s|%s|%s|%t|%s", t.Kind, t.Name, t.Hostname, t.RemotePort, t.Local, t.Pool, t.UpstreamProtocol, t.HostHeader, t.ProxyProtocol, t.LogRequests, policyKey(t.Policy))
}

// superviseStart runs an agent per tunnel and applies the config file again
// on SIGHUP and whenever its content changes: tunnels added start, tunnels
// removed drain and stop, the others are left alone. A tunnel of the
// original file failing for good (refused, taken over) ends start with its
// error, as a single agent would; one added by a reload is logged and
// dropped. A file that no longer parses is logged and the tunnels stay.
func superviseStart(ctx context.Context, base agent.Config, reload func() ([]agent.Tunnel, error), hup hangup, file string, stdout io.Writer) error {
	log := base.Logger
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type exit struct {
		rt  *runningTunnel
		err error
	}
	exits := make(chan exit, 16)
	running := map[string]*runningTunnel{}
	launch := func(t agent.Tunnel, initial bool) {
		rt := &runningTunnel{key: tunnelKey(t), t: t, initial: initial, done: make(chan error, 1)}
		cfg := base
		cfg.Tunnels = []agent.Tunnel{t}
		if base.Metrics != nil {
			// One registry, a label per agent (one per tunnel of the file),
			// so each agent's collectors stay apart. Not "tunnel": the
			// agent's own series already carry that label.
			cfg.Metrics = prometheus.WrapRegistererWith(prometheus.Labels{"agent": t.Local + "/" + string(t.Kind) + "/" + t.Name}, base.Metrics)
		}
		var actx context.Context
		actx, rt.cancel = context.WithCancel(ctx)
		running[rt.key] = rt
		go func() {
			err := runAgent(actx, cfg, stdout)
			rt.done <- err
			exits <- exit{rt, err}
		}()
	}
	tunnels := base.Tunnels
	for _, t := range tunnels {
		launch(t, true)
	}
	sum := fileSum(file)
	apply := func(why string) {
		next, err := reload()
		if err != nil {
			log.Error("reload failed: the tunnels stay as they were", "why", why, "err", explain(err))
			return
		}
		want := map[string]agent.Tunnel{}
		for _, t := range next {
			want[tunnelKey(t)] = t
		}
		removed, added := 0, 0
		for k, rt := range running {
			if _, ok := want[k]; !ok {
				delete(running, k)
				rt.cancel()
				<-rt.done // drained: its connections in flight finished
				removed++
			}
		}
		for k, t := range want {
			if _, ok := running[k]; !ok {
				launch(t, false)
				added++
			}
		}
		log.Info("reloaded the config file", "why", why, "file", file, "added", added, "removed", removed, "unchanged", len(running)-added)
	}
	tick := time.NewTicker(startWatch)
	defer tick.Stop()
	var fatal error
	for fatal == nil {
		select {
		case <-ctx.Done():
		case <-hup.c:
			sum = fileSum(file)
			apply("SIGHUP")
			continue
		case <-tick.C:
			if s := fileSum(file); s != nil && !bytes.Equal(s, sum) {
				sum = s
				apply("the file changed")
			}
			continue
		case e := <-exits:
			if running[e.rt.key] != e.rt {
				continue // removed by a reload
			}
			delete(running, e.rt.key)
			if e.err == nil && ctx.Err() == nil {
				continue
			}
			if e.rt.initial {
				fatal = e.err
				break
			}
			log.Error("a tunnel added by a reload stopped", "local", e.rt.t.Local, "err", explain(e.err))
			continue
		}
		break
	}
	cancel()
	for _, rt := range running {
		if err := <-rt.done; fatal == nil && err != nil {
			fatal = err
		}
	}
	return fatal
}

// fileSum is the hash of the file's content, nil when it cannot be read.
func fileSum(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	s := sha256.Sum256(b)
	return s[:]
}
