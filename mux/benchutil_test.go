package mux

import (
	"context"
	"io"
	"net"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/sluicehq/sluice/internal/testutil"
	"github.com/xtaci/smux"
)

// The comparison benchmarks run sluice's mux, hashicorp/yamux and
// xtaci/smux through the same code: each is wrapped as a benchSession, and
// every benchmark has one sub-benchmark per implementation, named
// impl=<name> so that `benchstat -col /impl` puts them side by side.
//
// Configuration: each library's own defaults, so the comparison is what a
// user gets out of the box. Keepalive stays on for all three (sluice 15 s,
// yamux 30 s, smux 10 s; no benchmark iteration lasts long enough for a
// ping to matter). The only changes: yamux logs to io.Discard instead of
// stderr (its close path logs read errors), and nothing else. Stream
// limits and backlogs are left alone because the idle-memory benchmark
// opens its 10,000 streams in chunks (benchOpenChunk) that fit every
// library's default accept backlog (sluice 1024, yamux 256, smux 1024).

// benchSession is the part of a multiplexed session the benchmarks use.
type benchSession interface {
	open() (net.Conn, error)
	accept() (net.Conn, error)
	close()
}

// benchImpl names a multiplexer and builds a session pair over a
// connected TCP pair.
type benchImpl struct {
	name string
	pair func(client, server net.Conn) (benchSession, benchSession, error)
}

var benchImpls = []benchImpl{
	{"sluice", benchSluicePair},
	{"yamux", benchYamuxPair},
	{"smux", benchSmuxPair},
}

// benchForEachImpl runs fn as one sub-benchmark per implementation.
func benchForEachImpl(b *testing.B, fn func(b *testing.B, impl benchImpl)) {
	for _, impl := range benchImpls {
		benchSettle()
		b.Run("impl="+impl.name, func(b *testing.B) { fn(b, impl) })
	}
}

// benchSettle keeps one sub-benchmark's aftermath out of the next: the
// garbage it left is collected and its memory handed back to the OS now,
// rather than by the collector and the scavenger while the next one is
// timed (on two cores that showed up as millisecond P99.9 latencies in
// whichever implementation ran right after the idle-memory benchmark),
// and goroutines still exiting after a Close get time to finish.
func benchSettle() {
	runtime.GC()
	debug.FreeOSMemory()
	time.Sleep(50 * time.Millisecond)
}

type benchSluice struct{ s *Session }

func (x benchSluice) open() (net.Conn, error) { return x.s.OpenStream(context.Background()) }
func (x benchSluice) accept() (net.Conn, error) {
	return x.s.AcceptStream(context.Background())
}
func (x benchSluice) close() { x.s.Close() }

func benchSluicePair(a, b net.Conn) (benchSession, benchSession, error) {
	c, err := Client(a, DefaultConfig())
	if err != nil {
		return nil, nil, err
	}
	s, err := Server(b, DefaultConfig())
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return benchSluice{c}, benchSluice{s}, nil
}

type benchYamux struct{ s *yamux.Session }

func (x benchYamux) open() (net.Conn, error)   { return x.s.OpenStream() }
func (x benchYamux) accept() (net.Conn, error) { return x.s.AcceptStream() }
func (x benchYamux) close()                    { x.s.Close() }

func benchYamuxConfig() *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	return cfg
}

func benchYamuxPair(a, b net.Conn) (benchSession, benchSession, error) {
	c, err := yamux.Client(a, benchYamuxConfig())
	if err != nil {
		return nil, nil, err
	}
	s, err := yamux.Server(b, benchYamuxConfig())
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return benchYamux{c}, benchYamux{s}, nil
}

type benchSmux struct{ s *smux.Session }

func (x benchSmux) open() (net.Conn, error)   { return x.s.OpenStream() }
func (x benchSmux) accept() (net.Conn, error) { return x.s.AcceptStream() }
func (x benchSmux) close()                    { x.s.Close() }

func benchSmuxPair(a, b net.Conn) (benchSession, benchSession, error) {
	c, err := smux.Client(a, smux.DefaultConfig())
	if err != nil {
		return nil, nil, err
	}
	s, err := smux.Server(b, smux.DefaultConfig())
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return benchSmux{c}, benchSmux{s}, nil
}

// benchTCPPair returns both ends of one loopback TCP connection, with
// TCP_NODELAY set on both (Go's default, set explicitly so that no
// implementation depends on it).
func benchTCPPair(b testing.TB) (*net.TCPConn, *net.TCPConn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatalf("bench: listen on loopback failed: %v", err)
	}
	defer ln.Close()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		ch <- result{c, err}
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatalf("bench: dial %s failed: %v", ln.Addr(), err)
	}
	r := <-ch
	if r.err != nil {
		a.Close()
		b.Fatalf("bench: accept on %s failed: %v", ln.Addr(), r.err)
	}
	ca, cb := a.(*net.TCPConn), r.c.(*net.TCPConn)
	for _, c := range []*net.TCPConn{ca, cb} {
		if err := c.SetNoDelay(true); err != nil {
			b.Fatalf("bench: setting TCP_NODELAY failed: %v", err)
		}
	}
	return ca, cb
}

// benchEnv is one session pair plus the goroutines a benchmark started
// on it; stop ends them all.
type benchEnv struct {
	cli, srv benchSession
	conns    [2]net.Conn
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// benchNewEnv builds a session pair of impl over a fresh TCP pair and
// stops it when the benchmark (this b.N round) ends.
func benchNewEnv(b *testing.B, impl benchImpl) *benchEnv {
	a, c := benchTCPPair(b)
	cli, srv, err := impl.pair(a, c)
	if err != nil {
		a.Close()
		c.Close()
		b.Fatalf("bench: starting a %s session pair failed: %v", impl.name, err)
	}
	e := &benchEnv{cli: cli, srv: srv, conns: [2]net.Conn{a, c}}
	b.Cleanup(e.stop)
	return e
}

// stop closes both sessions and their connection, then waits for every
// goroutine the benchmark started, so none outlives it.
func (e *benchEnv) stop() {
	e.stopOnce.Do(func() {
		e.cli.close()
		e.srv.close()
		e.conns[0].Close()
		e.conns[1].Close()
		e.wg.Wait()
	})
}

// go runs fn in a goroutine that stop waits for.
func (e *benchEnv) goRun(fn func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		fn()
	}()
}

// serveEcho accepts every stream the client opens and echoes what it
// reads until the stream or the session ends.
func (e *benchEnv) serveEcho() {
	e.goRun(func() {
		for {
			st, err := e.srv.accept()
			if err != nil {
				return
			}
			e.goRun(func() {
				defer st.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := st.Read(buf)
					if n > 0 {
						if _, werr := st.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			})
		}
	})
}

// benchRoundTrip writes msg and reads a reply of the same length into reply.
func benchRoundTrip(st net.Conn, msg, reply []byte) error {
	if _, err := st.Write(msg); err != nil {
		return err
	}
	_, err := io.ReadFull(st, reply)
	return err
}

// benchCPU is the process's CPU time (user + system, all threads) at the
// start of a timed section. On a shared machine wall-clock figures swing
// with other people's load; CPU time per op moves far less, so every
// benchmark reports it as well.
type benchCPU time.Duration

func benchCPUNow(b *testing.B) benchCPU {
	return benchCPU(testutil.CPUTime())
}

// report adds cpu-µs/op: CPU time of the whole process (both sessions,
// the benchmark's own goroutines, the runtime) per op since start.
func (start benchCPU) report(b *testing.B) {
	used := time.Duration(benchCPUNow(b) - start)
	b.ReportMetric(float64(used.Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
}
