package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is one OS process of a system under test (or the target service).
type Proc struct {
	Name    string // e.g. "sluice server"
	Edge    bool   // part of the public edge (counted for capacity planning)
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
	stdin   io.WriteCloser
}

// startProc starts bin with args, stdout and stderr going to a log file in
// dir. The child gets SIGKILL if the harness dies, so no tunnel outlives a
// crashed or interrupted run.
func startProc(name string, edge bool, dir, bin string, args, env []string) (*Proc, error) {
	logPath := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: create log %s: %w", name, logPath, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s (%s): %w (check the binary path and that it is executable)", name, bin, err)
	}
	p := &Proc{Name: name, Edge: edge, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// PID is the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and how.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Stop asks the process to end (SIGTERM), then kills it after a grace period.
func (p *Proc) Stop() {
	if p.stdin != nil {
		p.stdin.Close()
	}
	if ok, _ := p.Exited(); ok {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// LogTail returns the last lines the process printed, for error messages.
func (p *Proc) LogTail(maxLines int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return strings.Join(lines, "\n")
}

// RSSKB returns a process's resident set size in KiB, from /proc.
func RSSKB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read RSS of pid %d: %w (did the process exit?)", pid, err)
	}
	return parseVmRSS(b)
}

func parseVmRSS(status []byte) (int64, error) {
	for _, line := range bytes.Split(status, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := strings.Fields(string(v))
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, errors.New("no VmRSS line in /proc status")
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

// childEnv selects a helper role when the harness re-executes itself: the
// target service and the relay run as their own processes so their file
// descriptors, memory and CPU are not the load generator's.
const childEnv = "SLUICE_BENCH_CHILD"

// MaybeRunChild turns this process into a helper child if the parent asked
// for one, and never returns in that case. Call it first in main (and in
// TestMain of packages that run the harness).
func MaybeRunChild() {
	switch os.Getenv(childEnv) {
	case "target":
		runTargetChild()
	case "relay":
		runRelayChild()
	}
}

// TargetProc is the target service running as a child process.
type TargetProc struct {
	*Proc
	TCPAddr, HTTPAddr string
}

// StartTargetProc starts the target service as a child of this process.
func StartTargetProc(dir string) (*TargetProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable to start the target: %w", err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), childEnv+"=target")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "target.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create target log: %w", err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start target service: %w", err)
	}
	p := &Proc{Name: "target", cmd: cmd, logPath: logPath, done: make(chan struct{}), stdin: stdin}
	br := bufio.NewReader(out)
	type ready struct {
		tcp, http string
		err       error
	}
	rc := make(chan ready, 1)
	go func() {
		t, h, err := parseReady(br)
		rc <- ready{t, h, err}
		io.Copy(io.Discard, br)
	}()
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	select {
	case r := <-rc:
		if r.err != nil {
			p.Stop()
			return nil, fmt.Errorf("%w; target log: %s", r.err, p.LogTail(5))
		}
		return &TargetProc{Proc: p, TCPAddr: r.tcp, HTTPAddr: r.http}, nil
	case <-time.After(10 * time.Second):
		p.Stop()
		return nil, fmt.Errorf("target service did not start within 10s; log: %s", p.LogTail(5))
	}
}
