package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// RSSKB returns a process's resident set size in KiB, from /proc.
func RSSKB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read RSS of pid %d: %w (did the process exit?)", pid, err)
	}
	return parseVmRSS(b)
}

func parseVmRSS(status []byte) (int64, error) {
	return statusKB(status, "VmRSS:")
}

// Resident is a process's resident memory split by what backs it, in KiB
// (/proc/<pid>/status): Anon is what the process allocated (heap, stacks,
// the runtime's metadata), File the pages of mapped files, its binary's
// code above all, which are paged in once and shared between processes
// running the same binary.
type Resident struct {
	RSS, Anon, File, Shmem int64
}

// ResidentKB returns a process's resident memory split by backing.
func ResidentKB(pid int) (Resident, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Resident{}, fmt.Errorf("read RSS of pid %d: %w (did the process exit?)", pid, err)
	}
	return parseResident(b)
}

func parseResident(status []byte) (Resident, error) {
	var r Resident
	for _, f := range []struct {
		key string
		dst *int64
	}{{"VmRSS:", &r.RSS}, {"RssAnon:", &r.Anon}, {"RssFile:", &r.File}, {"RssShmem:", &r.Shmem}} {
		v, err := statusKB(status, f.key)
		if err != nil {
			return Resident{}, err
		}
		*f.dst = v
	}
	return r, nil
}

// statusKB reads one "Key:   123 kB" line of /proc/<pid>/status.
func statusKB(status []byte, key string) (int64, error) {
	for _, line := range bytes.Split(status, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(key)); ok {
			f := strings.Fields(string(v))
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s line in /proc status", strings.TrimSuffix(key, ":"))
}

// CtxSwitches sums voluntary and involuntary context switches over a
// process's live threads (/proc/<pid>/task/*/status). Go rarely ends a
// thread, so little is lost; on virtual machines without hardware counters
// this is the steadiest efficiency figure after CPU time.
func CtxSwitches(pid int) (int64, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, fmt.Errorf("list threads of pid %d: %w", pid, err)
	}
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		if err != nil {
			continue // the thread ended meanwhile
		}
		sum += parseCtxSwitches(b)
	}
	return sum, nil
}

func parseCtxSwitches(status []byte) int64 {
	var sum int64
	for _, line := range bytes.Split(status, []byte("\n")) {
		for _, key := range []string{"voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"} {
			if v, ok := bytes.CutPrefix(line, []byte(key)); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
				sum += n
			}
		}
	}
	return sum
}

// clockTick is USER_HZ, 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// CPUTime returns user+system CPU time of a process (all its threads, dead
// ones included) from /proc/<pid>/stat.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time of pid %d: %w", pid, err)
	}
	return parseStatCPU(b)
}

func parseStatCPU(stat []byte) (time.Duration, error) {
	// The command name (field 2) may contain spaces and parentheses; the
	// fields we want follow the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat: no ')'")
	}
	f := strings.Fields(string(stat[i+1:]))
	// After ')': state(3) ppid(4) ... utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, errors.New("malformed /proc stat: too few fields")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed /proc stat: utime/stime not numbers")
	}
	return time.Duration(ut+st) * clockTick, nil
}
