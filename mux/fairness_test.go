package mux

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/frame"
)

// TestSmallWriteNotStarvedByBulk: with many bulk streams whose queues are
// full, a small write on a new stream goes out after at most a couple of
// batches' worth of bulk data, not behind everything queued (a FIFO writer
// would put it behind all the bulk streams' queues). The order is read off
// the wire; nothing here is timed.
func TestSmallWriteNotStarvedByBulk(t *testing.T) {
	const bulkStreams = 16
	cfg := DefaultConfig()
	sess, raw := tstRawPairReading(t, true, cfg, false)
	// Credit without end, so only the queues and the socket hold data back.
	grant := frame.AppendWindowUpdate(tstCat(tstPreface), 0, frame.MaxWindow-frame.InitialSessionWindow)
	var writes []<-chan error
	for range bulkStreams {
		st, err := sess.OpenStream(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		grant = frame.AppendWindowUpdate(grant, st.ID(), frame.MaxWindow-frame.InitialStreamWindow)
		writes = append(writes, tstCall(func() error {
			for {
				if _, err := st.Write(tstPool[:1<<20]); err != nil {
					return err
				}
			}
		}))
	}
	raw.send(t, grant)
	// Nobody reads the connection yet: the socket fills, then every bulk
	// stream's queue, then every bulk Write blocks.
	tstEventually(t, "every bulk stream's queue to fill", func() bool {
		queued := int64(0)
		sess.streams.Range(func(_, v any) bool {
			queued += v.(*Stream).queued.Load()
			return true
		})
		return queued >= int64(bulkStreams)*int64(cfg.MaxStreamQueue-cfg.MaxFramePayload)
	})
	queuedBulk := int64(bulkStreams) * int64(cfg.MaxStreamQueue)

	small, err := sess.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := small.Write([]byte("small request")); err != nil {
		t.Fatal(err)
	}

	// Now read the wire and count the bulk bytes between the small
	// stream's OPEN and its DATA.
	fr := frame.NewReader(raw.conn, 64<<10)
	if err := fr.ReadPreface(); err != nil {
		t.Fatalf("reading the session's preface: %v", err)
	}
	_ = raw.conn.SetReadDeadline(time.Now().Add(tstTimeout))
	opened, bulkAfterOpen := false, int64(0)
	for {
		h, err := fr.Next()
		if err != nil {
			t.Fatalf("reading frames (opened %v, %d bulk bytes after the OPEN): %v", opened, bulkAfterOpen, err)
		}
		if h.Type == frame.TypeData {
			if err := fr.Discard(h); err != nil {
				t.Fatal(err)
			}
		}
		switch {
		case h.Type == frame.TypeOpen && h.StreamID == small.ID():
			opened = true
		case h.Type == frame.TypeData && h.StreamID == small.ID():
			if !opened {
				t.Fatal("the small stream's DATA came before its OPEN")
			}
			t.Logf("%d bulk bytes went out between the small stream's OPEN and its DATA (%d were queued)", bulkAfterOpen, queuedBulk)
			if limit := int64(2 * maxBatchBytes); bulkAfterOpen > limit {
				t.Fatalf("the small write waited behind %d bytes of bulk data (limit %d; %d were queued): the writer does not take turns between streams", bulkAfterOpen, limit, queuedBulk)
			}
			sess.Close()
			for _, ch := range writes {
				tstRecv(t, ch, "a bulk Write to return after Close")
			}
			return
		case h.Type == frame.TypeData && opened:
			bulkAfterOpen += int64(h.Length)
		}
	}
}
