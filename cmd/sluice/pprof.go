package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// startPprof serves Go's profiling endpoints (/debug/pprof/) on addr, for
// looking at a running edge or agent: CPU, heap, goroutines. They reveal
// the process's internals, so a non-loopback address is allowed but warned
// about. It returns the address it listens on and a function that stops it
// (the commands let it live as long as the process).
func startPprof(addr string, log *slog.Logger) (net.Addr, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--pprof %s: cannot listen: %w (pass a free host:port such as 127.0.0.1:6060)", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		log.Warn("profiling endpoints are reachable from the network; bind --pprof to 127.0.0.1 unless that is intended", "addr", ln.Addr().String())
	}
	log.Info("profiling endpoints", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return ln.Addr(), func() { srv.Close() }, nil
}

// maybeStartPprof starts the profiling endpoints when --pprof was given.
func (c *command) maybeStartPprof(log *slog.Logger) error {
	if c.pprof == "" {
		return nil
	}
	_, _, err := startPprof(c.pprof, log)
	return err
}
