package mux

import (
	"context"
	"testing"
	"time"
)

// TestNewStreamOpensWhileBulkStreamsHoldTheSessionCredit: with the session
// credit used up by streams whose reader has stopped, a new stream's OPEN
// and header still go out at once: small writes are not queued behind bulk
// ones for credit.
func TestNewStreamOpensWhileBulkStreamsHoldTheSessionCredit(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SessionWindow = 16 << 20 // the protocol's initial session credit
	cfg.InitialStreamWindow = 8 << 20
	cfg.MaxStreamWindow = 8 << 20
	c, s := sessionPair(t, cfg)
	accepted := make(chan *Stream, 8)
	go func() {
		for {
			st, err := s.AcceptStream(context.Background())
			if err != nil {
				return
			}
			accepted <- st // read nothing: the bulk data holds the credit
		}
	}()
	chunk := make([]byte, 256<<10)
	for range 3 {
		st, err := c.OpenStream(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				if _, err := st.Write(chunk); err != nil {
					return
				}
			}
		}()
	}
	tstEventually(t, "the bulk writers to take every byte above the reserve", func() bool {
		return c.send.credit.Load() <= creditReserve
	})
	opened := tstCall(func() error {
		_, err := c.OpenStreamWith(context.Background(), []byte("stream header"))
		return err
	})
	select {
	case err := <-opened:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		c.Close()
		<-opened
		t.Fatal("a new stream's header waited for session credit behind bulk streams")
	}
	c.Close()
	s.Close()
}
