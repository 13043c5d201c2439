package mux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/frame"
)

// FuzzSessionInput feeds arbitrary bytes from the peer to a server session
// whose application accepts, reads and answers streams. Whatever arrives,
// the session must not panic, must end once the peer hangs up, must say why
// with an error matching ErrSessionClosed, and must leave no goroutine.
func FuzzSessionInput(f *testing.F) {
	open1 := frame.AppendOpen(nil, 1)
	for _, seed := range [][]byte{
		// A conforming exchange touching every frame type.
		tstCat(tstPreface,
			open1, frame.AppendData(nil, 1, 5), []byte("hello"),
			frame.AppendWindowUpdate(nil, 1, 1000), frame.AppendWindowUpdate(nil, 0, 1000),
			frame.AppendPing(nil, false, 7), frame.AppendPing(nil, true, 9),
			frame.AppendOpen(nil, 3), frame.AppendReset(nil, 3, frame.CodeCancel),
			frame.AppendClose(nil, 1), frame.AppendGoAway(nil, frame.CodeNoError)),
		tstPreface,
		[]byte("HELLO, W"),
		tstCat(tstPreface, open1, tstHdr(frame.MaxDataPayload+1, 0, 0, 0, 1)),
		tstCat(tstPreface, tstHdr(0, 0x08, 0, 0, 1)),
		tstCat(tstPreface, open1, tstFill(1, frame.InitialStreamWindow), tstDataFrame(1, 1)),
		tstCat(tstPreface, open1, open1),
		tstCat(tstPreface, open1, frame.AppendClose(nil, 1), tstDataFrame(1, 3)),
		tstCat(tstPreface, frame.AppendWindowUpdate(nil, 0, 0)),
		tstCat(tstPreface, open1, frame.AppendWindowUpdate(nil, 1, frame.MaxWindow)),
	} {
		f.Add(seed)
	}
	cfg := DefaultConfig()
	cfg.KeepAliveInterval = -1 // the input alone drives the session
	f.Fuzz(func(t *testing.T, in []byte) {
		// The fuzzer does not notice a hung input; a watchdog turns one
		// into a crash that names the input and shows every goroutine.
		watchdog := time.AfterFunc(3*tstTimeout, func() {
			buf := make([]byte, 1<<20)
			panic(fmt.Sprintf("hung on input %q:\n%s", in, buf[:runtime.Stack(buf, true)]))
		})
		defer watchdog.Stop()
		a, b := net.Pipe()
		sess, err := Server(a, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { // the peer reads whatever the session sends
			defer wg.Done()
			_, _ = io.Copy(io.Discard, b)
		}()
		go func() { // the application
			defer wg.Done()
			for {
				st, err := sess.AcceptStream(context.Background())
				if err != nil {
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer st.Close()
					buf := make([]byte, 4096)
					for {
						n, err := st.Read(buf)
						if n > 0 {
							_, _ = st.Write(buf[:n])
						}
						if err != nil {
							_ = st.CloseWrite()
							return
						}
					}
				}()
			}
		}()
		_ = b.SetWriteDeadline(time.Now().Add(tstTimeout))
		_, _ = b.Write(in) // fails once the session has had enough: fine
		_ = b.Close()
		select {
		case <-sess.Done():
		case <-time.After(tstTimeout):
			t.Fatalf("the session did not end within %s after the peer hung up", tstTimeout)
		}
		if err := sess.Err(); !errors.Is(err, ErrSessionClosed) {
			t.Fatalf("Session.Err() = %v; want an error matching ErrSessionClosed", err)
		}
		sess.Close()
		finished := make(chan struct{})
		go func() { wg.Wait(); close(finished) }()
		select {
		case <-finished:
		case <-time.After(tstTimeout):
			t.Fatal("stream handlers still blocked after the session closed")
		}
	})
}
