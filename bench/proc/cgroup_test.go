package proc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCgroupV2(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"memory.current": "10485760\n",
		"memory.stat":    "anon 8388608\nfile 2097152\nactive_file 1048576\ninactive_file 1048576\n",
		"cpu.stat":       "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
	})
	if kb, err := CgroupMemKB(dir); err != nil || kb != 9216 {
		t.Errorf("v2 memory = %d KB, %v; want 10 MiB less 1 MiB inactive file = 9216 KB", kb, err)
	}
	if d, err := CgroupCPU(dir); err != nil || d != 2500*time.Millisecond {
		t.Errorf("v2 CPU = %v, %v; want 2.5s", d, err)
	}
}

func TestCgroupV1(t *testing.T) {
	root := t.TempDir()
	mem, cpu := filepath.Join(root, "memory", "p"), filepath.Join(root, "cpuacct", "p")
	writeFiles(t, mem, map[string]string{
		"memory.usage_in_bytes": "20971520\n",
		// v1 lists the cgroup's own figures, then total_ ones with its children.
		"memory.stat": "cache 0\ninactive_file 0\ntotal_cache 4194304\ntotal_inactive_file 3145728\n",
	})
	writeFiles(t, cpu, map[string]string{"cpuacct.usage": "1500000000\n"})
	if kb, err := CgroupMemKB(mem); err != nil || kb != 17408 {
		t.Errorf("v1 memory = %d KB, %v; want 20 MiB less 3 MiB inactive file = 17408 KB", kb, err)
	}
	if d, err := CgroupCPU(cpu); err != nil || d != 1500*time.Millisecond {
		t.Errorf("v1 CPU = %v, %v; want 1.5s", d, err)
	}
	c := Cgroups{Mem: mem, CPU: cpu}
	if kb, err := c.MemKB(false); err != nil || kb != 17408 {
		t.Errorf("system memory = %d, %v", kb, err)
	}
	if _, err := c.MemKB(true); err == nil || !strings.Contains(err.Error(), "edge container") {
		t.Errorf("edge-only memory without edge cgroups = %v, want an error naming the edge container", err)
	}
	c.EdgeCPU = cpu
	if d, err := c.CPUTime(true); err != nil || d != 1500*time.Millisecond {
		t.Errorf("edge CPU = %v, %v", d, err)
	}
}

func TestCgroupErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := CgroupMemKB(filepath.Join(dir, "absent")); err == nil || !strings.Contains(err.Error(), "cgroup_parent") {
		t.Errorf("missing cgroup: %v, want an error saying what to check", err)
	}
	writeFiles(t, dir, map[string]string{"cpu.stat": "user_usec 5\n", "memory.current": "x\n"})
	if _, err := CgroupCPU(dir); err == nil {
		t.Error("cpu.stat without usage_usec and no cpuacct.usage accepted")
	}
	if _, err := CgroupMemKB(dir); err == nil {
		t.Error("unparsable memory.current accepted")
	}
	if (Cgroups{}).Set() {
		t.Error("empty Cgroups claims to be set")
	}
}
