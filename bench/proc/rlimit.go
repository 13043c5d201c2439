//go:build unix

package proc

import "syscall"

// RaiseNoFile lifts the soft open-file limit to the hard limit so the
// memory scenario can hold 10,000 connections; child processes (the target,
// the tunnels) inherit it. It returns the resulting soft limit.
func RaiseNoFile() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return lim.Cur, err
		}
	}
	return lim.Cur, nil
}

// NoFile returns the current soft open-file limit, 0 if unreadable.
func NoFile() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return lim.Cur
}
