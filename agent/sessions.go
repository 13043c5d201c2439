package agent

import (
	"context"
	"sync"
	"time"
)

// Sessions to several edges. Each of Config.Sessions slots keeps one
// session, each to a different edge of the book. Slot 0, the primary,
// connects first: it registers the tunnels as they are configured and
// gets their leases; the other slots start once it has, and register the
// same tunnels under those leases, which an edge of the same fleet grants
// to the same agent again. A session lost is replaced on another edge at
// once when one is free; an edge that sends GOAWAY (it is stopping) keeps
// its session until its work in flight is done, while the slot opens a
// replacement elsewhere.

// refusedAvoid is how long an edge that refused a session beside the
// primary one is left alone.
const refusedAvoid = time.Minute

// runSlots runs every slot until ctx ends or one fails for good.
func (a *Agent) runSlots(ctx context.Context) error {
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	first := make(chan struct{})
	var once sync.Once
	firstUp := func() { once.Do(func() { close(first) }) }
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		failure error
	)
	for slot := range a.cfg.Sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if slot > 0 {
				select {
				case <-first:
				case <-rctx.Done():
					return
				}
			}
			if err := a.runSlot(rctx, slot, firstUp); err != nil {
				errOnce.Do(func() { failure = err })
				stop()
			}
		}()
	}
	wg.Wait()
	return failure
}

// runSlot keeps slot's session up, on one edge after another, until ctx
// ends (nil) or an edge refuses the agent for good (its error).
func (a *Agent) runSlot(ctx context.Context, slot int, firstUp func()) error {
	primary := slot == 0
	bo := a.cfg.Backoff
	start := time.Now()
	connected := false
	var old sync.WaitGroup // sessions of edges going away, still draining
	defer old.Wait()
	for {
		addr, wait := a.book.pick(slot)
		if addr == "" {
			// Every edge is held by another slot or avoided for now.
			if !a.book.wait(ctx, wait) {
				return nil
			}
			continue
		}
		if wait > 0 {
			if !a.book.wait(ctx, wait) {
				return nil
			}
			if again, w := a.book.pick(slot); again != addr || w > 0 {
				continue // the book changed meanwhile
			}
		}
		ls, err := a.connect(ctx, addr, primary)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.connectFailed(err)
			if fatal(err) && primary {
				return classify(addr, err)
			}
			if fatal(err) {
				// Another edge refusing what the first one granted (a port
				// it cannot bind, say) leaves the agent on the edges it
				// has; that edge is tried again much later.
				a.log.Warn("another edge of the fleet refused this agent's tunnels; serving from the edges it has", "edge", addr, "err", err)
				a.book.free(slot, addr, refusedAvoid)
				continue
			}
			delay := bo.Next()
			if primary && !connected && a.cfg.FirstConnectTimeout > 0 {
				left := a.cfg.FirstConnectTimeout - time.Since(start)
				if left <= 0 {
					return &UnreachableError{Addr: addr, Err: err}
				}
				// One last attempt right at the deadline, not one long after.
				delay = min(delay, left)
			}
			a.log.Warn("connecting to the edge failed; retrying", "edge", addr, "err", err, "retry_in", delay.Round(time.Millisecond))
			a.book.free(slot, addr, delay)
			continue
		}
		if !primary || connected {
			a.log.Info("edge session up", "edge", addr, "slot", slot)
		}
		connected = true
		a.book.use(slot, addr, ls.edge)
		a.book.learn(ls.fleet)
		if primary {
			a.live.Store(ls)
			firstUp()
		}
		began := time.Now()
		done := make(chan struct{})
		go func() {
			defer close(done)
			a.serve(ctx, ls)
		}()
		moved := false
		select {
		case <-ls.sess.GoingAway():
			// The edge is stopping: its work in flight finishes on this
			// session while the slot opens a replacement on another edge,
			// when it knows one; else it waits for the end, as alone.
			moved = ctx.Err() == nil && a.book.moveOff(slot, addr, goingAwayAvoid)
		case <-done:
		}
		if moved {
			a.log.Info("the edge is going away; moving to another edge", "edge", addr)
			old.Add(1)
			go func() {
				defer old.Done()
				<-done
				if primary {
					a.live.CompareAndSwap(ls, nil)
				}
			}()
			bo.Reset()
			continue
		}
		<-done
		if ctx.Err() != nil {
			if primary {
				a.live.Store(nil)
			}
			return nil
		}
		if primary {
			a.setLive(nil)
		}
		if err := ls.fatal(); err != nil && primary {
			return err
		}
		if time.Since(began) >= a.cfg.StableAfter {
			bo.Reset()
		}
		delay := bo.Next()
		if a.book.size() > 1 {
			// Another edge serves meanwhile; this one gets the backoff.
			a.log.Warn("lost the edge session; moving to another edge", "edge", addr, "err", ls.sess.Err())
		} else {
			a.log.Warn("lost the edge session; reconnecting", "err", ls.sess.Err(), "retry_in", delay.Round(time.Millisecond))
		}
		a.book.free(slot, addr, delay)
	}
}
