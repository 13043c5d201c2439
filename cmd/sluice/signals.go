package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes of a second interrupt during shutdown: 128 + the signal's
// number, as a shell reports a process killed by it.
const (
	exitSecondInterrupt = 130 // SIGINT (Ctrl-C) twice
	exitSecondTerminate = 143 // SIGTERM twice
)

// shutdownContext is cancelled by the first SIGINT or SIGTERM, which starts
// a graceful shutdown; a second one exits the process at once.
func shutdownContext(stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigc := make(chan os.Signal, 2)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigc:
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-sigc:
			code := exitSecondInterrupt
			if sig == syscall.SIGTERM {
				code = exitSecondTerminate
			}
			fmt.Fprintf(stderr, "sluice: second %v during shutdown: exiting now without waiting for connections in flight\n", sig)
			if c, ok := stderr.(io.Closer); ok {
				c.Close() // what is queued for stderr goes out before the exit
			}
			os.Exit(code)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigc)
		close(done)
		cancel()
	}
}

// hangup delivers SIGHUP, which reloads configuration instead of ending
// the process.
type hangup struct{ c chan os.Signal }

func notifyHangup() hangup {
	h := hangup{c: make(chan os.Signal, 1)}
	signal.Notify(h.c, syscall.SIGHUP)
	return h
}

func (h hangup) stop() { signal.Stop(h.c) }

// each calls f for every SIGHUP until ctx ends.
func (h hangup) each(ctx context.Context, f func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.c:
			f()
		}
	}
}
