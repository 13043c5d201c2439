// Package target is the service every system under test forwards to, and
// the small protocol the load generator speaks to it: one TCP port serves
// every byte-moving scenario and an HTTP port serves the HTTP scenario.
package target

import (
	"encoding/binary"
	"io"
)

// The client sends a 9-byte header (an op byte and a big-endian uint64
// size), then the op runs until it is done or the client closes.
const (
	OpUpload   = 'U' // client sends size bytes; target answers one byte once all arrived
	OpDownload = 'D' // target sends size bytes
	OpEcho     = 'E' // target echoes every byte until EOF
	OpSink     = 'S' // target discards everything until EOF
	// OpCount: the client sends frames, each a big-endian uint32 length
	// and that many bytes, and ends with an empty frame; the target then
	// answers how many payload bytes arrived, as a big-endian uint64 (size
	// is unused). Time-capped uploads use it: the count tells what crossed,
	// not what sat in buffers, and ending in-band needs no half-close,
	// which not every tunnel carries (frp ends both directions).
	OpCount   = 'C'
	HeaderLen = 9
	// Chunk is the read and write size of bulk transfers on both ends.
	Chunk = 128 << 10
	// UploadAck is the byte the target answers once an upload has arrived.
	UploadAck = 'K'
	httpBody  = "sluice-bench ok\n"
	// HTTPHostName is the virtual host the HTTP scenario asks for; tunnels
	// route it to the target's HTTP port.
	HTTPHostName = "bench.localhost"
)

// WriteHeader sends the request header of an op.
func WriteHeader(w io.Writer, op byte, size uint64) error {
	var h [HeaderLen]byte
	h[0] = op
	binary.BigEndian.PutUint64(h[1:], size)
	_, err := w.Write(h[:])
	return err
}

// CountFrameHeader is the length prefix of an OpCount frame.
const CountFrameHeader = 4
