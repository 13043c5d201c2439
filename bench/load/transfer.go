package load

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/bench/target"
)

// Transfer moves size bytes over one fresh connection in one direction and
// returns how long it took from the first byte sent to the last byte (or,
// for uploads, the target's acknowledgement) received.
func Transfer(addr string, size int64, upload bool, progress *atomic.Int64) (time.Duration, error) {
	c, err := dial(addr)
	if err != nil {
		return 0, fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer c.Close()
	buf := make([]byte, target.Chunk)
	start := time.Now()
	op := byte(target.OpDownload)
	if upload {
		op = target.OpUpload
	}
	c.SetDeadline(time.Now().Add(ioTimeout))
	if err := target.WriteHeader(c, op, uint64(size)); err != nil {
		return 0, fmt.Errorf("send request header: %w", err)
	}
	if upload {
		left := size
		for left > 0 {
			n := int64(len(buf))
			if left < n {
				n = left
			}
			c.SetWriteDeadline(time.Now().Add(ioTimeout))
			if _, err := c.Write(buf[:n]); err != nil {
				return 0, fmt.Errorf("upload after %d of %d bytes: %w", size-left, size, err)
			}
			left -= n
			if progress != nil {
				progress.Add(n)
			}
		}
		c.SetReadDeadline(time.Now().Add(ioTimeout))
		if _, err := io.ReadFull(c, buf[:1]); err != nil || buf[0] != target.UploadAck {
			return 0, fmt.Errorf("upload of %d bytes was not acknowledged by the target: %v", size, err)
		}
	} else {
		var got int64
		for got < size {
			c.SetReadDeadline(time.Now().Add(ioTimeout))
			n, err := c.Read(buf)
			got += int64(n)
			if progress != nil {
				progress.Add(int64(n))
			}
			if err != nil {
				if got >= size {
					break
				}
				return 0, fmt.Errorf("download stopped after %d of %d bytes: %w", got, size, err)
			}
		}
	}
	return time.Since(start), nil
}

// Parallel runs conns transfers at once and returns the aggregate
// rate: all bytes over the wall time from the first start to the last end.
func Parallel(addr string, conns int, size int64, upload bool, progress *atomic.Int64) (float64, error) {
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	start := time.Now()
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := Transfer(addr, size, upload, progress); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return MBps(int64(conns)*size, el), nil
}

// TransferFor moves up to size bytes over one fresh connection in one
// direction, stopping early at maxDur, and returns the bytes that crossed
// and how long that took. An upload ends in-band and waits for the
// target's count of what arrived (target.OpCount), so its time includes
// draining what sat in buffers when it stopped.
func TransferFor(addr string, size int64, upload bool, maxDur time.Duration, progress *atomic.Int64) (int64, time.Duration, error) {
	c, err := dial(addr)
	if err != nil {
		return 0, 0, fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer c.Close()
	buf := make([]byte, target.Chunk)
	start := time.Now()
	stop := start.Add(maxDur)
	op := byte(target.OpDownload)
	if upload {
		op = target.OpCount
	}
	c.SetDeadline(time.Now().Add(ioTimeout))
	if err := target.WriteHeader(c, op, uint64(size)); err != nil {
		return 0, 0, fmt.Errorf("send request header: %w", err)
	}
	if !upload {
		var got int64
		for got < size {
			dl := time.Now().Add(ioTimeout)
			if dl.After(stop) {
				dl = stop
			}
			c.SetReadDeadline(dl)
			n, err := c.Read(buf)
			got += int64(n)
			if progress != nil {
				progress.Add(int64(n))
			}
			if err != nil {
				if got >= size {
					break
				}
				if errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(stop) {
					return got, time.Since(start), nil // the time cap
				}
				return got, 0, fmt.Errorf("download stopped after %d of %d bytes: %w", got, size, err)
			}
		}
		return got, time.Since(start), nil
	}
	// Frames of up to a chunk, each behind its length; an empty frame ends
	// the upload in-band, at size or at the time cap.
	frame := make([]byte, target.CountFrameHeader+len(buf))
	var sent int64
	for sent < size && time.Now().Before(stop) {
		n := int64(len(buf))
		if size-sent < n {
			n = size - sent
		}
		binary.BigEndian.PutUint32(frame, uint32(n))
		c.SetWriteDeadline(time.Now().Add(ioTimeout))
		if _, err := c.Write(frame[:target.CountFrameHeader+n]); err != nil {
			return 0, 0, fmt.Errorf("upload after %d of %d bytes: %w", sent, size, err)
		}
		sent += n
		if progress != nil {
			progress.Add(n)
		}
	}
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := c.Write(make([]byte, target.CountFrameHeader)); err != nil {
		return 0, 0, fmt.Errorf("end the upload after %d bytes: %w", sent, err)
	}
	var reply [8]byte
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		return 0, 0, fmt.Errorf("upload of %d bytes: the target did not say how many arrived: %v", sent, err)
	}
	return int64(binary.BigEndian.Uint64(reply[:])), time.Since(start), nil
}

// ParallelFor runs conns TransferFor at once and returns the aggregate rate
// (all bytes over the wall time from the first start to the last end) and
// each connection's own rate, in MB/s.
func ParallelFor(addr string, conns int, size int64, upload bool, maxDur time.Duration, progress *atomic.Int64) (float64, []float64, error) {
	var wg sync.WaitGroup
	rates := make([]float64, conns)
	moved := make([]int64, conns)
	errs := make(chan error, conns)
	start := time.Now()
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, d, err := TransferFor(addr, size, upload, maxDur, progress)
			if err != nil {
				errs <- err
				return
			}
			moved[i], rates[i] = n, MBps(n, d)
		}()
	}
	wg.Wait()
	el := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, nil, err
	}
	var total int64
	for _, n := range moved {
		total += n
	}
	return MBps(total, el), rates, nil
}

// Fairness is how far the most unequal rate is from the mean, as a factor
// of at least 1: max over i of max(r_i/mean, mean/r_i). A connection that
// moved nothing makes it +Inf.
func Fairness(rates []float64) float64 {
	if len(rates) == 0 {
		return math.NaN()
	}
	var sum float64
	for _, r := range rates {
		sum += r
	}
	mean := sum / float64(len(rates))
	worst := 1.0
	for _, r := range rates {
		if r <= 0 {
			return math.Inf(1)
		}
		worst = math.Max(worst, math.Max(r/mean, mean/r))
	}
	return worst
}
