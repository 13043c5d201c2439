package mux_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"

	"github.com/sluicehq/sluice/mux"
)

// A session turns one connection into many streams. Here one side echoes
// every stream it accepts, and the other opens a stream, writes, half-closes
// and reads the echo back.
func Example() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()

	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		srv, err := mux.Server(conn, mux.DefaultConfig())
		if err != nil {
			return
		}
		defer srv.Close()
		for {
			st, err := srv.AcceptStream(context.Background())
			if err != nil {
				return
			}
			go func() {
				defer st.Close()
				io.Copy(st, st) // echo until the peer half-closes
			}()
		}
	}()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	cli, err := mux.Client(conn, mux.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()

	st, err := cli.OpenStream(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	st.Write([]byte("hello through the mux"))
	st.CloseWrite()
	reply, err := io.ReadAll(st)
	if err != nil {
		log.Fatal(err)
	}
	st.Close()
	fmt.Println(string(reply))
	// Output: hello through the mux
}
