package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/mux"
)

// forwardUDP serves one UDP flow: the edge opens a stream per public source
// address and carries length-prefixed datagrams on it (see control's
// AppendDatagram). The agent gives each flow a connected UDP socket of its
// own, so the local service sees one source port per public client and its
// replies come back to this flow alone. The flow ends when the edge closes
// the stream (its idle timeout), the session ends, or ctx does: a datagram
// service has no exchange in flight to wait for.
func (a *Agent) forwardUDP(ctx context.Context, ts *tunnelState, st *mux.Stream, hdr control.StreamHeader) {
	local, err := net.Dial("udp", ts.cfg.Local)
	if err != nil {
		ts.down.log(a.log, "local UDP service unreachable: its datagrams are being dropped; start it or fix the address", "local", ts.cfg.Local, "err", err)
		st.Reset()
		return
	}
	a.log.Debug("udp flow", "from", hdr.RemoteAddr, "local", ts.cfg.Local)
	defer context.AfterFunc(ctx, func() { st.Close() })()
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.udpReplies(ts, local, st)
	}()
	var in, dropped int
	small := make([]byte, 2048)
	for {
		n, err := control.ReadDatagramLen(st)
		if err != nil {
			break
		}
		p := small[:min(n, len(small))]
		if n > len(small) {
			// A large datagram gets a buffer of its own for the moment it
			// takes to pass on: flows stay cheap while they are idle.
			p = make([]byte, n)
		}
		if _, err := io.ReadFull(st, p); err != nil {
			break
		}
		in++
		ts.meter.AToB.Add(int64(n)) // for metrics
		if _, err := local.Write(p); err != nil {
			if isRefused(err) {
				// Nothing listens locally (yet): UDP drops the datagram,
				// and so do we, keeping the flow for the next one.
				dropped++
				ts.down.log(a.log, "local UDP service refused a datagram: nothing listens there; start it or fix the address", "local", ts.cfg.Local)
				continue
			}
			break
		}
	}
	local.Close()
	st.Close()
	<-done
	a.log.Debug("udp flow closed", "from", hdr.RemoteAddr, "datagrams_in", in, "refused", dropped)
}

// udpReplies sends every datagram the local service answers to the edge.
func (a *Agent) udpReplies(ts *tunnelState, local net.Conn, st *mux.Stream) {
	r := newReplyReader(local)
	defer r.release()
	for {
		buf, n, err := r.next()
		if err != nil {
			if isRefused(err) {
				continue // an ICMP error for an earlier datagram
			}
			if !errors.Is(err, net.ErrClosed) {
				a.log.Debug("reading the local UDP service failed", "local", ts.cfg.Local, "err", err)
			}
			st.Close()
			return
		}
		binary.BigEndian.PutUint16(buf, uint16(n))
		_, err = st.Write(buf[:control.DatagramOverhead+n])
		r.release()
		ts.meter.BToA.Add(int64(n))
		if err != nil {
			local.Close()
			return
		}
	}
}

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
