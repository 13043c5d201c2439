package frame_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/sluicehq/sluice/frame"
)

// dataThenErr returns all its data and err from the same Read call, as the
// io.Reader contract allows (a connection reset arriving with the last bytes).
type dataThenErr struct {
	data []byte
	err  error
}

func (d *dataThenErr) Read(p []byte) (int, error) {
	if len(d.data) == 0 {
		return 0, d.err
	}
	n := copy(p, d.data)
	d.data = d.data[n:]
	if len(d.data) == 0 {
		return n, d.err
	}
	return n, nil
}

// TestIOErrorWithDataPassesThrough is TestIOErrorPassesThrough for a source
// that delivers its failure together with its last bytes: the connection's
// error must still come out as itself, not as a protocol error.
func TestIOErrorWithDataPassesThrough(t *testing.T) {
	errConn := errors.New("connection reset by test")
	stream, _ := buildStream(300, 0, 17)
	for k := 0; k <= len(stream); k++ {
		for _, discard := range []bool{false, true} {
			src := &dataThenErr{data: bytes.Clone(stream[:k]), err: errConn}
			_, err := drain(frame.NewReader(src, 64), discard)
			if !errors.Is(err, errConn) {
				t.Fatalf("failure with the last of %d bytes (discard=%v): got %v; want the connection's own error", k, discard, err)
			}
		}
	}
}
