package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/sluicehq/sluice/bench/target"
)

func cmdTarget(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("target", flag.ExitOnError)
	tcp := fs.String("tcp", "0.0.0.0:5201", "TCP address of the byte-moving service")
	httpAddr := fs.String("http", "0.0.0.0:3000", "address of the HTTP service")
	fs.Parse(args)
	t, err := target.Start(*tcp, *httpAddr)
	if err != nil {
		return err
	}
	fmt.Printf("target: tcp %s, http %s\n", t.TCPAddr(), t.HTTPAddr())
	<-ctx.Done()
	return t.Close()
}
