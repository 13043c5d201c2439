package proc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Cgroups says where the memory and CPU time of a system that runs in
// containers are read: the cgroup all its containers share, and its edge
// container's own. Each is a directory of a cgroup v2 tree or of a v1
// memory or cpuacct tree; the files in it tell which.
type Cgroups struct {
	Mem, CPU         string // every container of the system
	EdgeMem, EdgeCPU string // the edge container alone; "" when not known
}

// Set reports whether any cgroup was given.
func (c Cgroups) Set() bool { return c.Mem != "" || c.CPU != "" }

// MemKB is the memory charged to the system's containers (edge only when
// edgeOnly), less inactive page cache: what docker stats shows.
func (c Cgroups) MemKB(edgeOnly bool) (int64, error) {
	dir, err := c.pick(c.Mem, c.EdgeMem, "memory", edgeOnly)
	if err != nil {
		return 0, err
	}
	return CgroupMemKB(dir)
}

// CPUTime is the CPU time the system's containers (edge only when
// edgeOnly) used so far.
func (c Cgroups) CPUTime(edgeOnly bool) (time.Duration, error) {
	dir, err := c.pick(c.CPU, c.EdgeCPU, "CPU", edgeOnly)
	if err != nil {
		return 0, err
	}
	return CgroupCPU(dir)
}

func (c Cgroups) pick(all, edge, what string, edgeOnly bool) (string, error) {
	dir := all
	if edgeOnly {
		dir = edge
	}
	if dir == "" {
		scope := "its containers"
		if edgeOnly {
			scope = "its edge container"
		}
		return "", fmt.Errorf("no %s cgroup given for %s", what, scope)
	}
	return dir, nil
}

// CgroupMemKB reads a cgroup's memory less its inactive page cache, from
// memory.current (v2) or memory.usage_in_bytes (v1); the figure includes
// every cgroup below it.
func CgroupMemKB(dir string) (int64, error) {
	usage, statKey := "memory.current", "inactive_file"
	if _, err := os.Stat(filepath.Join(dir, usage)); errors.Is(err, fs.ErrNotExist) {
		usage, statKey = "memory.usage_in_bytes", "total_inactive_file"
	}
	v, err := readInt(dir, usage)
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return 0, fmt.Errorf("read cgroup memory of %s: %w", dir, err)
	}
	inactive, err := statField(string(b), statKey)
	if err != nil {
		return 0, fmt.Errorf("%s/memory.stat: %w", dir, err)
	}
	if inactive < v {
		v -= inactive
	}
	return v / 1024, nil
}

// CgroupCPU reads a cgroup's CPU time so far, from cpu.stat's usage_usec
// (v2) or cpuacct.usage in nanoseconds (v1).
func CgroupCPU(dir string) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	if err == nil {
		if us, err := statField(string(b), "usage_usec"); err == nil {
			return time.Duration(us) * time.Microsecond, nil
		}
	}
	ns, err := readInt(dir, "cpuacct.usage")
	if err != nil {
		return 0, fmt.Errorf("%w (neither cgroup v2's cpu.stat usage_usec nor v1's cpuacct.usage is there)", err)
	}
	return time.Duration(ns), nil
}

func readInt(dir, name string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return 0, fmt.Errorf("read cgroup %s: %w (mount the host's /sys/fs/cgroup and check the cgroup_parent)", name, err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s/%s: %w", dir, name, err)
	}
	return v, nil
}

// statField finds "key value" in a cgroup stat file.
func statField(s, key string) (int64, error) {
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse %s %q: %w", key, v, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("no %s line", key)
}
