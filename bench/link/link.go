// Package link is the harness's own userspace link: a process that accepts
// TCP connections and forwards each to a fixed address, optionally shaped
// like a long-distance path (a one-way delay and a rate cap per direction,
// with a bounded queue in front of the cap). The harness puts one between
// an agent and its edge (for direct: between the client and the target) to
// measure every system across the same emulated WAN, and runs an unshaped
// one as the "relay" yardstick: what a plain userspace copy costs here.
//
// Why userspace: the kernels the harness runs on have no netem qdisc, and a
// link the harness runs itself needs no root. The link splits each TCP
// connection in two (client to link, link to destination) over loopback, so
// the kernel's own windows never limit a flow: what limits it is the path
// (rate, delay, queue) and the windows of the tunnel's own protocol, which
// is what the WAN scenario is meant to measure.
package link

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Dir shapes one direction of a link.
type Dir struct {
	// Delay is the one-way propagation delay.
	Delay time.Duration `json:"delay"`
	// RateMBps caps the direction at this many MB/s (10^6 bytes per
	// second), shared by every connection through the link, as one
	// bottleneck is; 0 means no cap.
	RateMBps float64 `json:"rate_mbps,omitempty"`
	// Queue bounds the bytes waiting in front of the rate cap, as the
	// buffer of the bottleneck's router does; when it is full the link
	// stops reading, and the sender's TCP sees back-pressure. 0 picks
	// DefaultQueue. Unused without a cap.
	Queue time.Duration `json:"queue,omitempty"`
}

// DefaultQueue is the queue in front of a rate cap, as time at the capped
// rate: 5 ms, the delay a well-managed bottleneck (CoDel's target) lets a
// standing queue add. Each connection may overshoot it by the one chunk it
// reads once there is room (64 KiB, 0.65 ms at 100 MB/s). A deeper queue would let one bulk flow add its
// length to every small message's round trip (bufferbloat), and the
// latency-under-load figures would then measure the queue, not the tunnel.
const DefaultQueue = 5 * time.Millisecond

// Shape is both directions of a link. Up carries what the dialing side
// (the agent, or for direct the client) sends; Down the replies.
type Shape struct {
	Up   Dir `json:"up"`
	Down Dir `json:"down"`
}

// Symmetric shapes both directions alike: rtt/2 each way and the same cap.
func Symmetric(rtt time.Duration, rateMBps float64) Shape {
	d := Dir{Delay: rtt / 2, RateMBps: rateMBps}
	return Shape{Up: d, Down: d}
}

// Zero reports whether the shape leaves traffic alone (a plain relay).
func (s Shape) Zero() bool { return s == Shape{} }

// RTT is the round trip the link adds.
func (s Shape) RTT() time.Duration { return s.Up.Delay + s.Down.Delay }

// String names the shape the way ParseShape reads it.
func (s Shape) String() string {
	if s.Up == s.Down {
		return s.Up.String()
	}
	return "up:" + s.Up.String() + ";down:" + s.Down.String()
}

func (d Dir) String() string {
	out := "delay=" + d.Delay.String()
	if d.RateMBps > 0 {
		out += ",rate=" + strconv.FormatFloat(d.RateMBps, 'g', -1, 64) + "MB"
		if d.Queue > 0 {
			out += ",queue=" + d.Queue.String()
		}
	}
	return out
}

// Validate checks a shape before a link starts.
func (s Shape) Validate() error {
	for _, d := range []struct {
		name string
		d    Dir
	}{{"up", s.Up}, {"down", s.Down}} {
		if d.d.Delay < 0 || d.d.RateMBps < 0 || d.d.Queue < 0 {
			return fmt.Errorf("link %s direction %s: delay, rate and queue must not be negative", d.name, d.d)
		}
		if d.d.Delay > time.Minute {
			return fmt.Errorf("link %s direction: delay %s is over a minute; give a one-way delay such as 25ms", d.name, d.d.Delay)
		}
	}
	return nil
}

// ParseShape reads "delay=25ms,rate=100MB[,queue=5ms]" for both directions
// alike, or "up:...;down:..." for each on its own. rate=0 or no rate means
// no cap.
func ParseShape(spec string) (Shape, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return Shape{}, errors.New("empty link shape: want delay=25ms,rate=100MB (rate optional)")
	}
	if strings.Contains(spec, "up:") || strings.Contains(spec, "down:") {
		var s Shape
		var seenUp, seenDown bool
		for _, part := range strings.Split(spec, ";") {
			part = strings.TrimSpace(part)
			switch {
			case strings.HasPrefix(part, "up:"):
				d, err := parseDir(strings.TrimPrefix(part, "up:"))
				if err != nil {
					return Shape{}, err
				}
				s.Up, seenUp = d, true
			case strings.HasPrefix(part, "down:"):
				d, err := parseDir(strings.TrimPrefix(part, "down:"))
				if err != nil {
					return Shape{}, err
				}
				s.Down, seenDown = d, true
			default:
				return Shape{}, fmt.Errorf("link shape %q: part %q is neither up:... nor down:...", spec, part)
			}
		}
		if !seenUp || !seenDown {
			return Shape{}, fmt.Errorf("link shape %q: give both up:... and down:...", spec)
		}
		return s, s.Validate()
	}
	d, err := parseDir(spec)
	if err != nil {
		return Shape{}, err
	}
	s := Shape{Up: d, Down: d}
	return s, s.Validate()
}

func parseDir(spec string) (Dir, error) {
	var d Dir
	for _, kv := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return Dir{}, fmt.Errorf("link shape %q: %q is not key=value (keys: delay, rate, queue)", spec, kv)
		}
		var err error
		switch k {
		case "delay":
			d.Delay, err = time.ParseDuration(v)
		case "queue":
			d.Queue, err = time.ParseDuration(v)
		case "rate":
			d.RateMBps, err = strconv.ParseFloat(strings.TrimSuffix(v, "MB"), 64)
		default:
			return Dir{}, fmt.Errorf("link shape %q: unknown key %q (keys: delay, rate in MB/s, queue)", spec, k)
		}
		if err != nil {
			return Dir{}, fmt.Errorf("link shape %q: %s=%q: %v", spec, k, v, err)
		}
	}
	return d, nil
}
