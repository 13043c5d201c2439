package bench

import (
	"os"
	"path/filepath"
	"testing"
	"time"
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

func TestCgroupReaders(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "memory.current"), []byte("10485760\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "cpu.stat"), []byte("usage_usec 2500000\nuser_usec 2000000\n"), 0o644)
	in := &Instance{System: "x", Cgroup: dir}
	if kb, err := in.RSSKB(false); err != nil || kb != 10240 {
		t.Fatalf("cgroup RSS = %d, %v; want 10240 KB", kb, err)
	}
	if d, err := in.CPU(false); err != nil || d != 2500*time.Millisecond {
		t.Fatalf("cgroup CPU = %v, %v; want 2.5s", d, err)
	}
	if _, err := in.RSSKB(true); err == nil {
		t.Fatal("a cgroup has no edge-only figure; asking for one must fail")
	}
	if _, err := parseCPUStat("user_usec 5\n"); err == nil {
		t.Fatal("cpu.stat without usage_usec accepted")
	}
	if _, err := cgroupMemKB(filepath.Join(dir, "absent")); err == nil {
		t.Fatal("missing cgroup accepted")
	}
}
