package mux

import (
	"sync"
	"time"
)

// deadline is a settable point in time whose channel closes when it passes.
// A blocked call selects on wait(); moving the deadline while the call waits
// takes effect without waking it, as net.Conn requires.
type deadline struct {
	mu    sync.Mutex
	timer *time.Timer
	ch    chan struct{} // closed when the deadline has passed; nil until first needed
	gen   uint64        // bumped by every set, so a stale timer cannot close a new channel
}

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	expired := d.ch != nil && isClosed(d.ch)
	if t.IsZero() {
		if expired {
			d.ch = make(chan struct{})
		}
		return
	}
	if d.ch == nil || expired {
		d.ch = make(chan struct{})
	}
	dur := time.Until(t)
	if dur <= 0 {
		close(d.ch)
		return
	}
	gen, ch := d.gen, d.ch
	d.timer = time.AfterFunc(dur, func() {
		d.mu.Lock()
		if d.gen == gen && !isClosed(ch) {
			close(ch)
		}
		d.mu.Unlock()
	})
}

// wait returns a channel that is closed once the deadline passes. The
// channel is made on first use, so a stream that never blocks never pays
// for it.
func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ch == nil {
		d.ch = make(chan struct{})
	}
	return d.ch
}

// passed reports whether the deadline has passed, without making the
// channel for a stream that never had a deadline.
func (d *deadline) passed() bool {
	d.mu.Lock()
	ch := d.ch
	d.mu.Unlock()
	return ch != nil && isClosed(ch)
}

// stop releases the timer.
func (d *deadline) stop() {
	d.mu.Lock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	d.mu.Unlock()
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
