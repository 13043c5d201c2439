package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/sluicehq/sluice/bench/load"
)

func cmdLoad(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	addr := fs.String("addr", "", "address that reaches a target service (directly or through a tunnel)")
	mode := fs.String("mode", "upload", "upload, download, latency, http (50 keep-alive connections, Host bench.localhost) or connrate (connect, round trip, close)")
	mib := fs.Int("mib", 1024, "MiB to move (upload, download)")
	rounds := fs.Int("rounds", 10000, "round trips (latency); milliseconds measured (http, connrate)")
	workers := fs.Int("workers", 4, "concurrent connections (connrate; the harness uses 4)")
	fs.Parse(args)
	if *addr == "" {
		return errors.New("load: -addr is required (e.g. the tunnel's public port)")
	}
	out, err := load.Manual(*addr, *mode, *mib, *rounds, *workers)
	if err != nil {
		return err
	}
	fmt.Println(out)
	return nil
}
