// Package coalesce turns many small writes from many goroutines (a log line
// per proxied request) into few system calls. Writers append to a buffer and
// return; one goroutine writes out whatever has gathered since its last
// write. When writes are rare each still goes out at once; under load, lines
// that arrive while a write is in progress leave together in the next one,
// which saves a system call per request on the agent's request log.
package coalesce

import (
	"io"
	"sync"
)

// maxPending bounds what may wait unwritten: a writer that finds this much
// waits for the flush, so a stalled destination (a terminal paused with
// ^S, a full pipe) slows the program instead of growing its memory.
const maxPending = 1 << 20

// Writer is an io.Writer safe for concurrent use. Bytes are written to the
// destination in the order their Write calls returned. Close writes out what
// is pending; call it before the program exits.
type Writer struct {
	dst io.Writer

	mu      sync.Mutex
	cond    sync.Cond // signalled when pending is taken or the writer closes
	pending []byte
	spare   []byte
	closed  bool
	err     error // the destination's last error, reported by the next Write

	wake chan struct{} // cap 1: pending has bytes to write
	done chan struct{} // closed when the flushing goroutine returns
}

// New starts a Writer to dst and the goroutine that writes to it.
func New(dst io.Writer) *Writer {
	w := &Writer{dst: dst, wake: make(chan struct{}, 1), done: make(chan struct{})}
	w.cond.L = &w.mu
	go w.flushLoop()
	return w
}

// Write queues p. It reports an error the destination returned to an
// earlier write, or io.ErrClosedPipe after Close; p itself is written later.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	for len(w.pending) >= maxPending && !w.closed {
		w.cond.Wait()
	}
	if w.closed {
		w.mu.Unlock()
		return 0, io.ErrClosedPipe
	}
	if err := w.err; err != nil {
		w.err = nil
		w.mu.Unlock()
		return 0, err
	}
	if len(w.pending) == 0 {
		select {
		case w.wake <- struct{}{}:
		default: // the flusher is already due
		}
	}
	w.pending = append(w.pending, p...)
	w.mu.Unlock()
	return len(p), nil
}

func (w *Writer) flushLoop() {
	defer close(w.done)
	for {
		_, open := <-w.wake
		w.mu.Lock()
		for len(w.pending) > 0 {
			out := w.pending
			w.pending = w.spare[:0]
			w.cond.Broadcast()
			w.mu.Unlock()
			_, err := w.dst.Write(out)
			w.mu.Lock()
			if err != nil {
				w.err = err
			}
			if cap(out) <= maxPending {
				w.spare = out
			}
		}
		w.mu.Unlock()
		if !open {
			return
		}
	}
}

// Close writes out what is pending and stops the flushing goroutine. Writes
// after Close fail.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return nil
	}
	w.closed = true
	w.cond.Broadcast()
	close(w.wake) // under mu: no Write is between its check and its send
	w.mu.Unlock()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
