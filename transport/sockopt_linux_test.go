//go:build linux

package transport

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// getsockopt reads one integer option from a TCP connection.
func getsockopt(t *testing.T, c net.Conn, level, opt int) int {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), level, opt) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatalf("getsockopt(%d, %d): %v", level, opt, gerr)
	}
	return v
}

// dialPair returns both ends of a connection made with the given options.
func dialPair(t *testing.T, opts TCPOptions) (client, server net.Conn) {
	t.Helper()
	ln := listenT(t, opts, nil)
	defer ln.Close()
	d, err := NewDialer(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	client, err = d.DialContext(testCtx(t), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		client.Close()
		t.Fatal(r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

func TestTCPOptionsApplied(t *testing.T) {
	opts := TCPOptions{
		NoDelay:           true,
		KeepAlive:         true,
		KeepAliveIdle:     7 * time.Second,
		KeepAliveInterval: 3 * time.Second,
		KeepAliveCount:    4,
		SendBuffer:        96 << 10,
		RecvBuffer:        80 << 10,
		NotSentLowat:      16 << 10,
	}
	client, server := dialPair(t, opts)
	for side, c := range map[string]net.Conn{"dialer": client, "listener": server} {
		checks := []struct {
			name        string
			level, opt  int
			want        int
			atLeastOnly bool // the kernel doubles buffer sizes for bookkeeping
		}{
			{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, 1, false},
			{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1, false},
			{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 7, false},
			{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 3, false},
			{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 4, false},
			{"TCP_NOTSENT_LOWAT", unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, 16 << 10, false},
			{"SO_SNDBUF", unix.SOL_SOCKET, unix.SO_SNDBUF, 96 << 10, true},
			{"SO_RCVBUF", unix.SOL_SOCKET, unix.SO_RCVBUF, 80 << 10, true},
		}
		for _, ck := range checks {
			got := getsockopt(t, c, ck.level, ck.opt)
			if got != ck.want && !(ck.atLeastOnly && got >= ck.want && got <= 2*ck.want) {
				t.Errorf("%s side: %s = %d, want %d", side, ck.name, got, ck.want)
			}
		}
	}
}

func TestTCPOptionsOff(t *testing.T) {
	// The net package turns TCP_NODELAY and keepalive on by itself; turning
	// them off must win over that.
	client, server := dialPair(t, TCPOptions{})
	for side, c := range map[string]net.Conn{"dialer": client, "listener": server} {
		if v := getsockopt(t, c, unix.IPPROTO_TCP, unix.TCP_NODELAY); v != 0 {
			t.Errorf("%s side: TCP_NODELAY = %d, want 0", side, v)
		}
		if v := getsockopt(t, c, unix.SOL_SOCKET, unix.SO_KEEPALIVE); v != 0 {
			t.Errorf("%s side: SO_KEEPALIVE = %d, want 0", side, v)
		}
	}
}

func TestTCPDefaultOptionsApplied(t *testing.T) {
	client, server := dialPair(t, DefaultTCPOptions())
	for side, c := range map[string]net.Conn{"dialer": client, "listener": server} {
		if v := getsockopt(t, c, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE); v != int(DefaultKeepAliveIdle/time.Second) {
			t.Errorf("%s side: TCP_KEEPIDLE = %d, want %v", side, v, DefaultKeepAliveIdle)
		}
		if v := getsockopt(t, c, unix.IPPROTO_TCP, unix.TCP_KEEPCNT); v != DefaultKeepAliveCount {
			t.Errorf("%s side: TCP_KEEPCNT = %d, want %d", side, v, DefaultKeepAliveCount)
		}
		if v := getsockopt(t, c, unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT); v != DefaultNotSentLowat {
			t.Errorf("%s side: TCP_NOTSENT_LOWAT = %d, want %d", side, v, DefaultNotSentLowat)
		}
	}
}
