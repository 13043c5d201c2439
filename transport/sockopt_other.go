//go:build !linux

package transport

import (
	"fmt"
	"net"
	"syscall"
)

// controlBuffers does nothing here: buffers are set after connect by applyTCP.
func controlBuffers(syscall.RawConn, TCPOptions) error { return nil }

// applyTCP sets the portable options through the net package.
// TCP_NOTSENT_LOWAT is Linux-only and ignored.
func applyTCP(c *net.TCPConn, o TCPOptions) error {
	if err := c.SetNoDelay(o.NoDelay); err != nil {
		return fmt.Errorf("transport: set TCP_NODELAY: %w", err)
	}
	ka := net.KeepAliveConfig{Enable: o.KeepAlive}
	if o.KeepAlive {
		ka.Idle, ka.Interval, ka.Count = o.KeepAliveIdle, o.KeepAliveInterval, o.KeepAliveCount
	}
	if err := c.SetKeepAliveConfig(ka); err != nil {
		return fmt.Errorf("transport: set TCP keepalive: %w", err)
	}
	if o.SendBuffer > 0 {
		if err := c.SetWriteBuffer(o.SendBuffer); err != nil {
			return fmt.Errorf("transport: set SO_SNDBUF=%d: %w", o.SendBuffer, err)
		}
	}
	if o.RecvBuffer > 0 {
		if err := c.SetReadBuffer(o.RecvBuffer); err != nil {
			return fmt.Errorf("transport: set SO_RCVBUF=%d: %w", o.RecvBuffer, err)
		}
	}
	return nil
}
