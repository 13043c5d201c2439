//go:build linux

package transport

import (
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// sockopt is one setsockopt call; name is for the error message.
type sockopt struct {
	level, opt, value int
	name              string
}

// controlBuffers sets SO_SNDBUF/SO_RCVBUF on a socket that is not yet
// connected or listening.
func controlBuffers(rc syscall.RawConn, o TCPOptions) error {
	return setsockopts(rc, bufferOpts(o))
}

func bufferOpts(o TCPOptions) []sockopt {
	var s []sockopt
	if o.SendBuffer > 0 {
		s = append(s, sockopt{unix.SOL_SOCKET, unix.SO_SNDBUF, o.SendBuffer, "SO_SNDBUF"})
	}
	if o.RecvBuffer > 0 {
		s = append(s, sockopt{unix.SOL_SOCKET, unix.SO_RCVBUF, o.RecvBuffer, "SO_RCVBUF"})
	}
	return s
}

// applyTCP sets every option on a connected socket. It runs after the net
// package's own setup, which turns TCP_NODELAY on regardless.
func applyTCP(c *net.TCPConn, o TCPOptions) error {
	s := []sockopt{{unix.IPPROTO_TCP, unix.TCP_NODELAY, boolInt(o.NoDelay), "TCP_NODELAY"}}
	s = append(s, sockopt{unix.SOL_SOCKET, unix.SO_KEEPALIVE, boolInt(o.KeepAlive), "SO_KEEPALIVE"})
	if o.KeepAlive {
		s = append(s,
			sockopt{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(o.KeepAliveIdle.Seconds()), "TCP_KEEPIDLE"},
			sockopt{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, int(o.KeepAliveInterval.Seconds()), "TCP_KEEPINTVL"},
			sockopt{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, o.KeepAliveCount, "TCP_KEEPCNT"},
		)
	}
	s = append(s, bufferOpts(o)...)
	if o.NotSentLowat > 0 {
		s = append(s, sockopt{unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, o.NotSentLowat, "TCP_NOTSENT_LOWAT"})
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("transport: get raw socket to set TCP options: %w", err)
	}
	return setsockopts(rc, s)
}

func setsockopts(rc syscall.RawConn, s []sockopt) error {
	if len(s) == 0 {
		return nil
	}
	var serr error
	err := rc.Control(func(fd uintptr) {
		for _, o := range s {
			if e := unix.SetsockoptInt(int(fd), o.level, o.opt, o.value); e != nil {
				serr = fmt.Errorf("transport: set %s=%d: %w; check TCPOptions against the kernel's limits", o.name, o.value, e)
				return
			}
		}
	})
	if err != nil {
		return fmt.Errorf("transport: reach socket to set TCP options: %w", err)
	}
	return serr
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
