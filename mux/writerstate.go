package mux

// The writer goroutine's lifecycle. A session's writer (sendLoop) runs only
// while there is something to write: the first signal starts it, it lingers
// a moment once the queue is empty, and it ends unless work was signalled
// meanwhile. When the session ends, exactly one goroutine does the last
// write (the GOAWAY fail queued, then the connection's close): the writer,
// if one runs, or a goroutine started for it. Every change of state is one
// of the transitions below, taken under the session's writerMu, so that a
// signal can never fall between a writer's last look at the queue and its
// end.

// writerState is where a session's writer is in its lifecycle.
type writerState uint8

const (
	// writerIdle: no writer runs; the next signal starts one.
	writerIdle writerState = iota
	// writerRunning: a writer runs, and nothing was signalled since it
	// last lingered.
	writerRunning
	// writerSignalled: a writer runs, and work was signalled since it last
	// lingered: it must look at the queue again before it may end.
	writerSignalled
	// writerDraining: the session ended while a writer ran; that writer
	// does the last write as it stops.
	writerDraining
	// writerEnded: the session ended and its last write is done or under
	// way; no writer starts any more.
	writerEnded
)

func (s writerState) String() string {
	switch s {
	case writerIdle:
		return "idle"
	case writerRunning:
		return "running"
	case writerSignalled:
		return "signalled"
	case writerDraining:
		return "draining"
	case writerEnded:
		return "ended"
	}
	return "writerState(?)"
}

// writerEvent is what happens to the writer.
type writerEvent uint8

const (
	// writerSignal: something was queued (signalWriter).
	writerSignal writerEvent = iota
	// writerLingered: the writer found nothing to write for writerLinger.
	writerLingered
	// writerStopped: the writer returns because the session ended or a
	// write failed.
	writerStopped
	// writerEnd: the session ends (fail, once).
	writerEnd
)

func (e writerEvent) String() string {
	switch e {
	case writerSignal:
		return "signal"
	case writerLingered:
		return "lingered"
	case writerStopped:
		return "stopped"
	case writerEnd:
		return "end"
	}
	return "writerEvent(?)"
}

// writerAction is what a transition asks of the goroutine that took it.
type writerAction uint8

const (
	// writerNone: nothing.
	writerNone writerAction = iota
	// writerStart: start a writer goroutine.
	writerStart
	// writerWake: wake the writer that runs.
	writerWake
	// writerGoOn: the writer lingers once more.
	writerGoOn
	// writerStop: the writer returns.
	writerStop
	// writerLast: do the session's last write (lastWrite): the writer
	// that stops does it, or for writerEnd, a goroutine started for it.
	writerLast
)

func (a writerAction) String() string {
	switch a {
	case writerNone:
		return "none"
	case writerStart:
		return "start"
	case writerWake:
		return "wake"
	case writerGoOn:
		return "go on"
	case writerStop:
		return "stop"
	case writerLast:
		return "last write"
	}
	return "writerAction(?)"
}

// on is the transition table: the state after e, and what the caller must
// do. Events that cannot happen in a state (a writer event with no writer
// running) leave it unchanged and ask for a stop, the harmless answer.
func (s writerState) on(e writerEvent) (writerState, writerAction) {
	switch e {
	case writerSignal:
		switch s {
		case writerIdle:
			return writerRunning, writerStart
		case writerRunning, writerSignalled:
			return writerSignalled, writerWake
		}
		return s, writerNone // the session ended: nothing more is written
	case writerLingered:
		switch s {
		case writerRunning:
			return writerIdle, writerStop
		case writerSignalled:
			// A signal came after the writer's last look at the queue:
			// ending now could strand what it queued.
			return writerRunning, writerGoOn
		case writerDraining:
			return writerEnded, writerLast
		}
		return s, writerStop
	case writerStopped:
		switch s {
		case writerRunning, writerSignalled:
			// The session's end comes next (writerEnd), and finds no
			// writer to leave the last write to.
			return writerIdle, writerStop
		case writerDraining:
			return writerEnded, writerLast
		}
		return s, writerStop
	case writerEnd:
		switch s {
		case writerIdle:
			return writerEnded, writerLast
		case writerRunning, writerSignalled:
			return writerDraining, writerNone
		}
		return s, writerNone // ended already
	}
	return s, writerNone
}
