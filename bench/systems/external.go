package systems

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sluicehq/sluice/bench/proc"
	"github.com/sluicehq/sluice/bench/target"
)

// ExternalSystem is a system someone else started (the containers of
// docker-compose.bench.yml): the harness only connects to it, and reads its
// memory and CPU from its cgroups instead of /proc.
type ExternalSystem struct {
	SysName  string
	Addr     string // public TCP address
	HTTPAddr string // HTTP entry point, "" when not routed
	Cgroups  proc.Cgroups
	Ver      string // what the results call it; "" says where it runs
	Skip     string // why it is not measured; "" measures it
}

const externalUsage = "name=host:port[,http=host:port][,cgroup=DIR][,mem-cgroup=DIR][,cpu-cgroup=DIR][,edge-mem-cgroup=DIR][,edge-cpu-cgroup=DIR][,version=TEXT][,skip=REASON]"

// ParseExternal reads "name=host:port" and comma-separated parts after it:
// http= (the HTTP entry point); cgroup= (a cgroup v2 directory for memory
// and CPU), or mem-cgroup= and cpu-cgroup= (cgroup v1's memory and cpuacct
// directories), with edge-mem-cgroup= and edge-cpu-cgroup= for the edge
// container alone; version= (what the results call it); skip= (why it is
// not measured: the rest of the spec, commas included). Empty parts and
// empty values are left out, so a script can fill them from variables that
// may be unset.
func ParseExternal(spec string) (*ExternalSystem, error) {
	head, rest, _ := strings.Cut(spec, ",")
	name, addr, ok := strings.Cut(head, "=")
	if !ok || name == "" || addr == "" {
		return nil, fmt.Errorf("external system %q: want %s", spec, externalUsage)
	}
	e := &ExternalSystem{SysName: name, Addr: addr}
	for rest != "" {
		var p string
		if strings.HasPrefix(rest, "skip=") {
			p, rest = rest, ""
		} else {
			p, rest, _ = strings.Cut(rest, ",")
		}
		if p == "" {
			continue
		}
		k, v, ok := strings.Cut(p, "=")
		dst := map[string]*string{
			"http": &e.HTTPAddr, "mem-cgroup": &e.Cgroups.Mem, "cpu-cgroup": &e.Cgroups.CPU,
			"edge-mem-cgroup": &e.Cgroups.EdgeMem, "edge-cpu-cgroup": &e.Cgroups.EdgeCPU,
			"version": &e.Ver, "skip": &e.Skip,
		}[k]
		switch {
		case ok && k == "cgroup":
			e.Cgroups.Mem, e.Cgroups.CPU = v, v
		case ok && dst != nil:
			*dst = v
		default:
			return nil, fmt.Errorf("external system %q: unknown part %q (want %s)", spec, p, externalUsage)
		}
	}
	return e, nil
}

// Name is the system's name as given.
func (e *ExternalSystem) Name() string { return e.SysName }

// Available says why the system is skipped, when the spec said so; an
// unreachable system is reported by waitLive.
func (e *ExternalSystem) Available() error {
	if e.Skip != "" {
		return errors.New(e.Skip)
	}
	return nil
}

// Version is what the spec calls the system, else where it runs.
func (e *ExternalSystem) Version() string {
	if e.Ver != "" {
		return e.Ver
	}
	return "external (container at " + e.Addr + ")"
}

// HTTPRouting is true when an HTTP entry point was given.
func (e *ExternalSystem) HTTPRouting() bool { return e.HTTPAddr != "" }

// Start returns a handle to the running system; nothing is started.
func (e *ExternalSystem) Start(context.Context, Env, StartOptions) (*Instance, error) {
	in := &Instance{System: e.SysName, Addr: e.Addr, HTTPAddr: e.HTTPAddr, HTTPHost: target.HTTPHostName, Started: time.Now(), External: true, Cgroups: e.Cgroups}
	return in, nil
}
