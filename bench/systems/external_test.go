package systems

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/bench/proc"
)

func TestParseExternal(t *testing.T) {
	e, err := ParseExternal("sluice=edge:6002,http=edge:8080,cgroup=/cg/x.slice")
	if err != nil {
		t.Fatal(err)
	}
	want := proc.Cgroups{Mem: "/cg/x.slice", CPU: "/cg/x.slice"}
	if e.Name() != "sluice" || e.Addr != "edge:6002" || e.HTTPAddr != "edge:8080" || e.Cgroups != want || !e.HTTPRouting() {
		t.Fatalf("ParseExternal = %+v", e)
	}
	if err := e.Available(); err != nil {
		t.Fatalf("Available = %v, want nil without skip=", err)
	}
	if !strings.Contains(e.Version(), "edge:6002") {
		t.Errorf("Version without version= is %q, want where it runs", e.Version())
	}
	for _, bad := range []string{"", "sluice", "=x:1", "sluice=x:1,color=red", "sluice=x:1,http"} {
		if _, err := ParseExternal(bad); err == nil {
			t.Errorf("ParseExternal(%q) accepted", bad)
		}
	}
}

// The compose file fills parts from variables that may be unset: empty
// parts and values drop out, and skip= keeps the rest of the spec.
func TestParseExternalFromComposeVariables(t *testing.T) {
	e, err := ParseExternal("frp=frps:6002,http=frps:8080,,version=,skip=")
	if err != nil {
		t.Fatal(err)
	}
	if e.Skip != "" || e.Ver != "" || e.Cgroups.Set() {
		t.Fatalf("empty values were kept: %+v", e)
	}
	e, err = ParseExternal("rathole=r:6002,mem-cgroup=/h/memory/p,cpu-cgroup=/h/cpuacct/p,edge-mem-cgroup=/h/memory/p/e,edge-cpu-cgroup=/h/cpuacct/p/e,version=rathole 0.5.0 (image x),skip=no image, no binary; set RATHOLE_BIN")
	if err != nil {
		t.Fatal(err)
	}
	want := proc.Cgroups{Mem: "/h/memory/p", CPU: "/h/cpuacct/p", EdgeMem: "/h/memory/p/e", EdgeCPU: "/h/cpuacct/p/e"}
	if e.Cgroups != want {
		t.Errorf("cgroups = %+v, want %+v", e.Cgroups, want)
	}
	if e.Version() != "rathole 0.5.0 (image x)" {
		t.Errorf("Version = %q", e.Version())
	}
	if err := e.Available(); err == nil || err.Error() != "no image, no binary; set RATHOLE_BIN" {
		t.Errorf("Available = %v, want the whole skip reason", err)
	}
}
