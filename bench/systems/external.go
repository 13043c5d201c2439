package systems

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sluicehq/sluice/bench/target"
)

// ExternalSystem is a system someone else started (the containers of
// docker-compose.bench.yml): the harness only connects to it, and reads its
// memory and CPU from its cgroup instead of /proc.
type ExternalSystem struct {
	SysName  string
	Addr     string // public TCP address
	HTTPAddr string // HTTP entry point, "" when not routed
	Cgroup   string // cgroup v2 directory holding all its containers
}

// ParseExternal reads "name=host:port[,http=host:port][,cgroup=/path]".
func ParseExternal(spec string) (*ExternalSystem, error) {
	parts := strings.Split(spec, ",")
	name, addr, ok := strings.Cut(parts[0], "=")
	if !ok || name == "" || addr == "" {
		return nil, fmt.Errorf("external system %q: want name=host:port[,http=host:port][,cgroup=/sys/fs/cgroup/...]", spec)
	}
	e := &ExternalSystem{SysName: name, Addr: addr}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		switch {
		case ok && k == "http":
			e.HTTPAddr = v
		case ok && k == "cgroup":
			e.Cgroup = v
		default:
			return nil, fmt.Errorf("external system %q: unknown part %q (known: http=, cgroup=)", spec, p)
		}
	}
	return e, nil
}

// Name is the system's name as given.
func (e *ExternalSystem) Name() string { return e.SysName }

// Available is always nil: waitLive reports an unreachable system.
func (e *ExternalSystem) Available() error { return nil }

// Version says where the system runs.
func (e *ExternalSystem) Version() string { return "external (container at " + e.Addr + ")" }

// HTTPRouting is true when an HTTP entry point was given.
func (e *ExternalSystem) HTTPRouting() bool { return e.HTTPAddr != "" }

// Start returns a handle to the running system; nothing is started.
func (e *ExternalSystem) Start(context.Context, Env, StartOptions) (*Instance, error) {
	in := &Instance{System: e.SysName, Addr: e.Addr, HTTPAddr: e.HTTPAddr, HTTPHost: target.HTTPHostName, Started: time.Now(), External: true, Cgroup: e.Cgroup}
	return in, nil
}
