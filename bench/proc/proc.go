// Package proc runs the OS processes of a benchmark (the systems under test,
// the target service, the harness's links) and reads what they cost from
// /proc and cgroups.
package proc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Proc is one OS process of a system under test (or one of the harness's
// own helper processes).
type Proc struct {
	Name    string // e.g. "sluice server"
	Edge    bool   // part of the public edge (counted for capacity planning)
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
	stdin   io.WriteCloser
}

// Start starts bin with args, stdout and stderr going to a log file in dir.
// On Linux the child gets SIGKILL if the harness dies, so no tunnel outlives a
// crashed or interrupted run.
func Start(name string, edge bool, dir, bin string, args, env []string) (*Proc, error) {
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
	cmd.SysProcAttr = childAttr()
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

// ChildEnv selects a helper role when the harness re-executes itself: the
// target service and the links run as processes of their own so their file
// descriptors, memory and CPU are neither the load generator's nor the
// tunnel's.
const ChildEnv = "SLUICE_BENCH_CHILD"

// StartChild re-executes this program in a helper role (ChildEnv=role) and
// waits for the first line it prints on stdout, which it returns: a child
// says where it listens that way. The child's stderr goes to a log in dir;
// its stdin stays open until Stop, so a child that reads stdin to EOF ends
// when the harness stops it or dies.
func StartChild(name string, edge bool, dir, role string, env []string) (*Proc, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("find own executable to start %s: %w", name, err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(append(os.Environ(), ChildEnv+"="+role), env...)
	cmd.SysProcAttr = childAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	logPath := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, "", fmt.Errorf("start %s: create log %s: %w", name, logPath, err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, "", fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Edge: edge, cmd: cmd, logPath: logPath, done: make(chan struct{}), stdin: stdin}
	type ready struct {
		line string
		err  error
	}
	rc := make(chan ready, 1)
	go func() {
		br := bufio.NewReader(out)
		line, err := br.ReadString('\n')
		rc <- ready{strings.TrimSpace(line), err}
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
			return nil, "", fmt.Errorf("%s did not report ready: %w; its log: %s", name, r.err, p.LogTail(5))
		}
		return p, r.line, nil
	case <-time.After(10 * time.Second):
		p.Stop()
		return nil, "", fmt.Errorf("%s did not start within 10s; its log: %s", name, p.LogTail(5))
	}
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

// Stop asks the process to end (stdin closed, then SIGTERM), then kills it
// after a grace period.
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
