package mux

// AfterReadable arranges for f to run, once, on a goroutine of its own, as
// soon as a Read of st would not block: data has arrived, the peer closed
// or reset the stream, st was closed or reset here, or the session ended.
// If that is already so, f starts at once. It returns at once, so that a
// stream read now and then (a control stream) holds no goroutine while it
// is idle; call AfterReadable again from f to wait for more. A later call
// replaces an f that has not started yet. Do not mix it with Forward.
func (st *Stream) AfterReadable(f func()) {
	st.waiters().ready.Store(&f)
	st.fireReadable()
}

// fireReadable starts the AfterReadable function, if one waits and st is
// readable. Whoever makes st readable calls it after changing the state
// (through wakeReader, or at the session's end), and AfterReadable after
// publishing f, so that one of them sees both; the swap starts f once.
func (st *Stream) fireReadable() {
	w := st.w.Load()
	if w == nil {
		return
	}
	f := w.ready.Load()
	if f == nil {
		return
	}
	st.mu.Lock()
	readable := st.rBuffered > 0 || st.readStateLocked() != nil
	st.mu.Unlock()
	if !readable {
		select {
		case <-st.s.done:
		default:
			return
		}
	}
	if w.ready.CompareAndSwap(f, nil) {
		go (*f)()
	}
}
