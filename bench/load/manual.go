package load

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/sluicehq/sluice/bench/target"
)

// Manual runs one load by hand (sluice-bench load) and describes the result;
// it is how a tunnel is driven while a profiler watches it.
func Manual(addr, mode string, mib, rounds, workers int) (string, error) {
	switch mode {
	case "upload", "download":
		size := int64(mib) << 20
		d, err := Transfer(addr, size, mode == "upload", nil)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s %d MiB in %v: %.0f MB/s", mode, mib, d.Round(time.Millisecond), MBps(size, d)), nil
	case "latency":
		h, err := Latency(addr, 1000, rounds, time.Minute, nil)
		if err != nil {
			return "", err
		}
		return PctLine(h), nil
	case "http":
		// Host: the virtual host every tunnel routes (with the port, as a
		// browser would send it).
		_, port, _ := net.SplitHostPort(addr)
		res, err := HTTP(context.Background(), HTTPTarget{Addr: addr, Host: net.JoinHostPort(target.HTTPHostName, port)}, 50, 300*time.Millisecond, time.Duration(rounds)*time.Millisecond, nil)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%.0f req/s over 50 connections, P50 %d µs, P99 %d µs, %d failed", res.RPS, res.Hist.ValueAtQuantile(50), res.Hist.ValueAtQuantile(99), res.Failed), nil
	case "connrate":
		// The harness's connection-rate load: workers each connecting,
		// making one round trip and closing, for rounds milliseconds.
		rate, failed, err := ConnRate(addr, workers, time.Duration(rounds)*time.Millisecond, nil)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%.0f connections/s (connect, round trip, close) over %d workers, %d failed", rate, workers, failed), nil
	}
	return "", fmt.Errorf("load mode %q: want upload, download, latency, http or connrate", mode)
}
