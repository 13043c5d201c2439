package mux

import (
	"testing"
	"testing/synctest"
	"time"
)

// The deadline keeps one timer across sets; each case moves it the way
// net/http does between requests and checks the channel closes when, and
// only when, the deadline in force has passed.
func TestDeadlineReusesItsTimer(t *testing.T) {
	closed := func(d *deadline) bool {
		select {
		case <-d.wait():
			return true
		default:
			return false
		}
	}
	synctest.Test(t, func(t *testing.T) {
		var d deadline
		start := time.Now()
		d.set(start.Add(10 * time.Millisecond))
		d.set(start.Add(50 * time.Millisecond)) // moved later before it fired
		time.Sleep(20 * time.Millisecond)
		synctest.Wait()
		if closed(&d) {
			t.Fatal("closed at 20 ms by the deadline it was moved from")
		}
		time.Sleep(31 * time.Millisecond)
		synctest.Wait()
		if !closed(&d) {
			t.Fatal("still open after the 50 ms deadline passed")
		}

		d.set(time.Time{}) // cleared: a fresh channel that stays open
		if closed(&d) {
			t.Fatal("clearing the deadline left the channel closed")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if closed(&d) {
			t.Fatal("closed with no deadline set")
		}

		now := time.Now()
		d.set(now.Add(40 * time.Millisecond))
		d.set(now.Add(5 * time.Millisecond)) // moved earlier
		time.Sleep(6 * time.Millisecond)
		synctest.Wait()
		if !closed(&d) {
			t.Fatal("still open after the earlier deadline it was moved to")
		}

		d.set(time.Unix(1, 0)) // in the past: closed at once, as net/http aborts a read
		if !closed(&d) {
			t.Fatal("a deadline in the past did not close the channel")
		}

		d.set(time.Now().Add(time.Millisecond))
		d.stop() // the stream ended: the timer must not fire any more
		time.Sleep(time.Second)
		synctest.Wait()
		if closed(&d) {
			t.Fatal("closed after stop")
		}
	})
}
