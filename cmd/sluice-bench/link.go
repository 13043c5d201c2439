package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/sluicehq/sluice/bench/link"
)

// cmdLink runs the harness's link in the foreground, so any tunnel (or a
// profiler's view of one) can be put across the same emulated WAN the
// benchmark uses.
func cmdLink(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("link", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to accept connections on")
	to := fs.String("to", "", "address to forward every connection to (e.g. the edge's agent port)")
	spec := fs.String("shape", "delay=25ms,rate=100MB", "one-way delay and rate cap per direction: delay=D[,rate=MB/s][,queue=D], or up:...;down:... for each on its own")
	fs.Parse(args)
	if *to == "" {
		return errors.New("link: -to is required (where connections go)")
	}
	shape, err := link.ParseShape(*spec)
	if err != nil {
		return err
	}
	l, err := link.New(shape)
	if err != nil {
		return err
	}
	ln, err := l.Listen(*listen)
	if err != nil {
		return fmt.Errorf("link: listen on %s: %w", *listen, err)
	}
	l.Forward(ln, *to)
	fmt.Printf("link: %s -> %s, %s (Ctrl-C ends it)\n", ln.Addr(), *to, shape)
	<-ctx.Done()
	return l.Close()
}
