package proc

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CgroupMemKB reads memory.current (bytes) of a cgroup v2 directory; the
// figure includes every container below it.
func CgroupMemKB(dir string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(dir, "memory.current"))
	if err != nil {
		return 0, fmt.Errorf("read cgroup memory of %s: %w (mount the host's /sys/fs/cgroup and check the cgroup_parent)", dir, err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s/memory.current: %w", dir, err)
	}
	return v / 1024, nil
}

// CgroupCPU reads usage_usec from a cgroup v2 cpu.stat.
func CgroupCPU(dir string) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return 0, fmt.Errorf("read cgroup CPU of %s: %w", dir, err)
	}
	return parseCPUStat(string(b))
}

func parseCPUStat(s string) (time.Duration, error) {
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse cpu.stat usage_usec %q: %w", v, err)
			}
			return time.Duration(us) * time.Microsecond, nil
		}
	}
	return 0, fmt.Errorf("cpu.stat has no usage_usec line")
}
