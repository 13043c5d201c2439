package systems

import (
	"testing"
)

func TestParseExternal(t *testing.T) {
	e, err := ParseExternal("sluice=edge:6002,http=edge:8080,cgroup=/cg/x.slice")
	if err != nil {
		t.Fatal(err)
	}
	if e.Name() != "sluice" || e.Addr != "edge:6002" || e.HTTPAddr != "edge:8080" || e.Cgroup != "/cg/x.slice" || !e.HTTPRouting() {
		t.Fatalf("ParseExternal = %+v", e)
	}
	for _, bad := range []string{"", "sluice", "=x:1", "sluice=x:1,color=red"} {
		if _, err := ParseExternal(bad); err == nil {
			t.Errorf("ParseExternal(%q) accepted", bad)
		}
	}
}
