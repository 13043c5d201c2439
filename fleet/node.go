package fleet

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// The embedded node's JetStream limits: leases are small (one record of a
// few hundred bytes per tunnel), so a few MiB would do; these caps only
// keep a runaway from filling the disk or the edge's memory.
const (
	nodeMaxMemory = 64 << 20
	nodeMaxStore  = 1 << 30
	clusterName   = "sluice"
	localUser     = "sluice-edge"
)

// node is the embedded nats-server of an edge in a fleet.
type node struct {
	srv *server.Server
}

// startNode starts this edge's JetStream node: routes on the port after
// the fleet port, to the same beside each address in Join, with the fleet's
// mutual TLS; clients only on a loopback port with a password derived from
// the secret (the edge itself connects in-process).
func startNode(cfg Config, a *auth, edgeID string) (*node, error) {
	routeListen, err := routeAddr(cfg.Listen)
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(routeListen)
	rport, _ := strconv.Atoi(port)
	name, err := nodeName(cfg, edgeID)
	if err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName:         name,
		Host:               "127.0.0.1",
		Port:               server.RANDOM_PORT,
		Username:           localUser,
		Password:           a.client,
		JetStream:          true,
		JetStreamMaxMemory: nodeMaxMemory,
		JetStreamMaxStore:  nodeMaxStore,
		StoreDir:           filepath.Join(cfg.StateDir, "fleet"),
		NoSigs:             true,
		NoLog:              true,
	}
	peers := edgeSet(cfg.Listen, cfg.Join)
	if len(peers) > 1 || len(cfg.Join) > 0 {
		opts.Cluster = server.ClusterOpts{
			Name:       clusterName,
			Host:       host,
			Port:       rport,
			TLSConfig:  a.tlsConfig(),
			TLSTimeout: 5,
			// A restarted edge comes back at the same address: keep trying.
			ConnectRetries: -1,
		}
		if cfg.Advertise != "" {
			if adv, err := routeAddr(cfg.Advertise); err == nil {
				opts.Cluster.Advertise = adv
			}
		}
		for _, j := range cfg.Join {
			r, err := routeAddr(j)
			if err != nil {
				return nil, err
			}
			opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats-route", Host: r})
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("fleet: embedded store: %w", err)
	}
	log := &natsLogger{l: cfg.Logger, fatal: make(chan string, 1)}
	srv.SetLoggerV2(log, false, false, false)
	go srv.Start()
	deadline := time.Now().Add(cfg.StartTimeout)
	for !srv.ReadyForConnections(50 * time.Millisecond) {
		select {
		case msg := <-log.fatal:
			srv.Shutdown()
			return nil, fmt.Errorf("fleet: the embedded store could not start: %s", msg)
		default:
		}
		if time.Now().After(deadline) {
			srv.Shutdown()
			return nil, fmt.Errorf("fleet: the embedded store did not start within %s", cfg.StartTimeout)
		}
	}
	return &node{srv: srv}, nil
}

// nodeName is the node's name in the store's cluster. It is kept in the
// state directory, so an edge restarted on it comes back as the same node:
// the store's replicas count it as the member they lost and it catches
// up, where a new name would be a stranger whose old self still holds a
// replica's place, and a rolling restart would leave the store short of
// its majority.
func nodeName(cfg Config, edgeID string) (string, error) {
	dir := filepath.Join(cfg.StateDir, "fleet")
	file := filepath.Join(dir, "node-name")
	if b, err := os.ReadFile(file); err == nil {
		if name := strings.TrimSpace(string(b)); name != "" {
			return name, nil
		}
	}
	name := cfg.Name + "-" + edgeID
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("fleet: state directory: %w", err)
	}
	if err := os.WriteFile(file, []byte(name+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("fleet: state directory: %w", err)
	}
	return name, nil
}

func (n *node) stop() {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

// natsLogger passes the embedded node's warnings and errors to the edge's
// log; its notices (routes made, leaders elected) only at debug level, as
// they come by the dozen whenever an edge joins or leaves.
// Its fatal errors (a route port in use) stop the node's start.
type natsLogger struct {
	l     *slog.Logger
	fatal chan string
}

func (n *natsLogger) Noticef(format string, v ...any) {
	n.l.Debug(fmt.Sprintf(format, v...), "source", "nats")
}
func (n *natsLogger) Warnf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	for _, p := range routineWarnings {
		if strings.HasPrefix(msg, p) {
			n.l.Debug(msg, "source", "nats")
			return
		}
	}
	n.l.Warn(msg, "source", "nats")
}

// routineWarnings are what the node warns of every time a fleet starts or
// stops: nothing an operator should act on. The loopback client password
// is random per fleet secret and never leaves the process.
var routineWarnings = []string{
	"Plaintext passwords detected",
	"Waiting for routing to be established",
	"JetStream has not established contact with a meta leader",
	"Metalayer blocking snapshot",
}

func (n *natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	n.l.Error(msg, "source", "nats")
	select {
	case n.fatal <- msg:
	default:
	}
}
func (n *natsLogger) Errorf(format string, v ...any) {
	n.l.Debug(fmt.Sprintf(format, v...), "source", "nats")
}
func (n *natsLogger) Debugf(string, ...any) {}
func (n *natsLogger) Tracef(string, ...any) {}
