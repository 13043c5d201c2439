package mux

import (
	"sync"
	"time"
)

// deadline is a settable point in time whose channel closes when it passes.
// A blocked call selects on wait(); moving the deadline while the call waits
// takes effect without waking it, as net.Conn requires.
type deadline struct {
	mu sync.Mutex
	// timer is made by the first set with a future time and reset by later
	// ones: net/http moves a connection's read deadline several times per
	// request, and a new timer each time was a measurable share of the
	// agent's CPU.
	timer *time.Timer
	at    time.Time     // the deadline; zero for none
	ch    chan struct{} // closed when the deadline has passed; nil until first needed
}

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
	}
	d.at = t
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
	if d.timer == nil {
		d.timer = time.AfterFunc(dur, d.fire)
	} else {
		d.timer.Reset(dur)
	}
}

// fire runs when the timer goes off. The timer is shared by every set, so
// a run may be stale (its set was overtaken while it waited for mu): it
// closes the channel only when the deadline now in force has passed, and
// otherwise waits for that one.
func (d *deadline) fire() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.at.IsZero() || d.ch == nil || isClosed(d.ch) {
		return
	}
	if dur := time.Until(d.at); dur > 0 {
		d.timer.Reset(dur)
		return
	}
	close(d.ch)
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
	d.at = time.Time{} // a run of fire already under way must not re-arm it
	if d.timer != nil {
		d.timer.Stop()
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
