package run

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Progress prints what the run is doing. On a terminal (and not under CI)
// it keeps one live line per running scenario, redrawn in place; otherwise
// it prints one plain line per finished step, which reads well in CI logs.
type Progress struct {
	w    io.Writer
	live bool

	mu    sync.Mutex
	stop  chan struct{}
	done  chan struct{}
	label string
	count *atomic.Int64
	total int64
	unit  string
	start time.Time
}

// NewProgress writes to w; live redrawing only when w is a terminal and the
// CI environment variable is unset.
func NewProgress(w io.Writer) *Progress {
	live := false
	if f, ok := w.(*os.File); ok && os.Getenv("CI") == "" && os.Getenv("TERM") != "dumb" {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			live = true
		}
	}
	return &Progress{w: w, live: live}
}

// Begin starts a step; the returned counter is what the step advances.
func (p *Progress) Begin(label string, total int64, unit string) *atomic.Int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.label, p.total, p.unit, p.start = label, total, unit, time.Now()
	p.count = new(atomic.Int64)
	if p.live {
		p.stop, p.done = make(chan struct{}), make(chan struct{})
		go p.redraw(p.stop, p.done, p.count, label, total, unit)
	}
	return p.count
}

func (p *Progress) redraw(stop, done chan struct{}, c *atomic.Int64, label string, total int64, unit string) {
	defer close(done)
	t := time.NewTicker(150 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			fmt.Fprint(p.w, "\r\033[K")
			return
		case <-t.C:
			n := c.Load()
			if unit == "B" {
				fmt.Fprintf(p.w, "\r\033[K%s  %d/%d MiB", label, n>>20, total>>20)
			} else if total > 0 {
				fmt.Fprintf(p.w, "\r\033[K%s  %s/%s %s", label, human(n), human(total), unit)
			} else {
				fmt.Fprintf(p.w, "\r\033[K%s  %s %s", label, human(n), unit)
			}
		}
	}
}

// End finishes the current step and prints its result line.
func (p *Progress) End(result string) {
	p.mu.Lock()
	if p.stop != nil {
		close(p.stop)
		<-p.done
		p.stop = nil
	}
	label, el := p.label, time.Since(p.start)
	p.mu.Unlock()
	fmt.Fprintf(p.w, "%-34s %s  (%.1fs)\n", label, result, el.Seconds())
}

// Printf prints a line of its own.
func (p *Progress) Printf(format string, args ...any) {
	fmt.Fprintf(p.w, format+"\n", args...)
}

func human(n int64) string { return fmt.Sprint(n) }
