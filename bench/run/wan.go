package run

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/bench/link"
	"github.com/sluicehq/sluice/bench/load"
	"github.com/sluicehq/sluice/bench/plan"
	"github.com/sluicehq/sluice/bench/results"
	"github.com/sluicehq/sluice/bench/systems"
)

// runWAN starts a fresh instance with the harness's link between agent
// and edge (for direct: between client and target) and measures it across
// that emulated path: one connection each way, parallel connections and
// their fairness, and small round trips while two bulk uploads run.
func (r *Runner) runWAN(ctx context.Context, s systems.System, round int, tag string, l plan.WANLink) {
	p, name := r.Params, s.Name()
	rtt := time.Duration(l.RTTms * float64(time.Millisecond))
	shape := link.Symmetric(rtt, l.RateMBps)
	tag = fmt.Sprintf("%s WAN %s", tag, l.Name())
	r.Progress.Begin(tag+" start", 0, "")
	in, err := s.Start(ctx, r.env(name+"-"+l.Name(), round), systems.StartOptions{Link: &shape})
	if err != nil {
		r.fail(tag+" start", err)
		return
	}
	defer in.Stop()
	if _, err := waitLive(ctx, in, secs(p.StartupTimeoutSec)+4*rtt); err != nil {
		r.fail(tag+" start", err)
		return
	}
	r.Progress.End("live")
	step := func(what string, fn func() error) bool {
		if ctx.Err() != nil {
			return false
		}
		err := fn()
		if err == nil {
			err = in.Alive()
		}
		if err != nil {
			r.fail(tag+" "+what, err)
			return false
		}
		return true
	}
	size, maxDur := int64(p.WANMiB)<<20, secs(p.WANMaxSec)
	for _, upload := range []bool{true, false} {
		dir, fig := "download", results.WANDownload
		if upload {
			dir, fig = "upload", results.WANUpload
		}
		ok := step(dir, func() error {
			c := r.Progress.Begin(tag+" "+dir, size, "B")
			n, d, err := load.TransferFor(in.Addr, size, upload, maxDur, c)
			if err != nil {
				return fmt.Errorf("%s of %d MiB across %s: %w", dir, p.WANMiB, l.Title(), err)
			}
			v := load.MBps(n, d)
			r.add(results.WANMetric(l, fig), name, v)
			capped := ""
			if n < size {
				capped = fmt.Sprintf(" (time cap: %d of %d MiB)", n>>20, p.WANMiB)
			}
			r.Progress.End(fmt.Sprintf("%.1f MB/s%s", v, capped))
			return nil
		})
		if !ok {
			return
		}
	}
	if p.WANParallelConns > 0 {
		ok := step("parallel", func() error {
			psize := int64(p.WANParallelMiB) << 20
			c := r.Progress.Begin(fmt.Sprintf("%s parallel %dx download", tag, p.WANParallelConns), psize*int64(p.WANParallelConns), "B")
			agg, rates, err := load.ParallelFor(in.Addr, p.WANParallelConns, psize, false, maxDur, c)
			if err != nil {
				return fmt.Errorf("parallel download (%d x %d MiB) across %s: %w", p.WANParallelConns, p.WANParallelMiB, l.Title(), err)
			}
			f := load.Fairness(rates)
			r.add(results.WANMetric(l, results.WANParallel), name, agg)
			r.add(results.WANMetric(l, results.WANFairness), name, f)
			r.Progress.End(fmt.Sprintf("%.1f MB/s aggregate, worst connection %.2fx from the mean", agg, f))
			return nil
		})
		if !ok {
			return
		}
	}
	if p.WANLoadedRounds > 0 {
		step("latency + 2 bulk", func() error {
			c := r.Progress.Begin(tag+" latency + 2 bulk", int64(p.WANLoadedRounds), "rounds")
			// A second for the bulk windows to grow (at least 10 round
			// trips), then the time cap bounds the measured part.
			settle := max(time.Second, 10*rtt)
			h, bulk, err := load.Loaded(in.Addr, 2, 5, p.WANLoadedRounds, settle, secs(p.WANLoadedMaxSec), c)
			if err != nil {
				return fmt.Errorf("round trips under load across %s: %w", l.Title(), err)
			}
			r.add(results.WANMetric(l, results.WANLoadP50), name, float64(h.ValueAtQuantile(50)))
			r.add(results.WANMetric(l, results.WANLoadP99), name, float64(h.ValueAtQuantile(99)))
			r.add(results.WANMetric(l, results.WANLoadP999), name, float64(h.ValueAtQuantile(99.9)))
			r.add(results.WANMetric(l, results.WANLoadBulk), name, bulk)
			r.Progress.End(fmt.Sprintf("%s; bulk %.1f MB/s", load.PctLine(h), bulk))
			return nil
		})
	}
}
