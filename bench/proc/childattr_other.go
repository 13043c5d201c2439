//go:build !linux

package proc

import "syscall"

// childAttr is empty: only Linux kills a child when its parent dies, so
// elsewhere a crashed harness can leave children to stop by hand.
func childAttr() *syscall.SysProcAttr { return nil }
