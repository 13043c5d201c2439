package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// PeerKind names what answered at the edge's address when it was not a
// sluice edge speaking the expected transport.
type PeerKind string

// The peers the agent recognises.
const (
	PeerHTTP        PeerKind = "http"         // an HTTP server (often the edge's own public HTTP port)
	PeerSSH         PeerKind = "ssh"          // an SSH server
	PeerTLS         PeerKind = "tls"          // a TLS server where plain TCP was expected
	PeerPlainSluice PeerKind = "plain-sluice" // a sluice edge without TLS where TLS was expected
	PeerRedis       PeerKind = "redis"        // a Redis server (it answered the probe's PING)
	PeerLineBased   PeerKind = "line"         // another line-based server such as SMTP, FTP or POP3
	PeerUnknown     PeerKind = "unknown"      // something that answered, but not as sluice
)

// WrongPeerError means the edge's address answered, but not as a sluice edge
// speaking the agent's transport; retrying cannot help.
type WrongPeerError struct {
	Addr string
	Kind PeerKind
	// First holds the first bytes the peer sent.
	First []byte
}

func (e *WrongPeerError) Error() string {
	var what string
	switch e.Kind {
	case PeerHTTP:
		what = "an HTTP server, not the edge's agent port (an edge's public HTTP port answers like this)"
	case PeerSSH:
		what = "an SSH server"
	case PeerTLS:
		what = "a TLS server, but this agent speaks plain TCP (the edge uses TLS)"
	case PeerPlainSluice:
		what = "a sluice edge speaking plain TCP, but this agent speaks TLS"
	case PeerRedis:
		what = "a Redis server"
	case PeerLineBased:
		what = "a line-based server (SMTP, FTP or similar)"
	default:
		what = "something that is not a sluice edge"
	}
	return fmt.Sprintf("%s answered as %s; it sent %q", e.Addr, what, e.First)
}

// classifyFirstBytes names a peer from what it sent; nil when the bytes say
// nothing certain (including a sluice edge, whose failure is something else).
func classifyFirstBytes(addr string, b []byte, expectTLS bool) *WrongPeerError {
	if len(b) == 0 {
		return nil
	}
	first := bytes.Clone(b[:min(len(b), 32)])
	kind := PeerUnknown
	switch {
	case bytes.HasPrefix(b, []byte("SLUIC")):
		if !expectTLS {
			return nil
		}
		kind = PeerPlainSluice
	case bytes.HasPrefix(b, []byte("HTTP/")):
		kind = PeerHTTP
	case bytes.HasPrefix(b, []byte("SSH-")):
		kind = PeerSSH
	case len(b) >= 2 && (b[0] == 0x15 || b[0] == 0x16) && b[1] == 0x03:
		if expectTLS {
			return nil
		}
		kind = PeerTLS
	case bytes.HasPrefix(b, []byte("+PONG")) || bytes.HasPrefix(b, []byte("-NOAUTH")) || bytes.HasPrefix(b, []byte("-DENIED")):
		kind = PeerRedis // its answers to PING: without, with a password, and in protected mode
	case b[0] == '-' || b[0] == '+' || bytes.HasPrefix(b, []byte("220")):
		kind = PeerLineBased
	}
	return &WrongPeerError{Addr: addr, Kind: kind, First: first}
}

// Probe timings. The probe starts probeAfter into a handshake that has not
// finished and gives its answer within probeBudget, so a wrong peer is named
// about a second after the agent started. A peer that speaks first (SSH,
// SMTP, a plain sluice edge) does so within probeBanner.
const (
	probeBanner = 250 * time.Millisecond
	probeLine   = 300 * time.Millisecond
	probeBudget = 750 * time.Millisecond
)

// probePeer finds out what listens at addr, on connections of its own, in at
// most probeBudget. Two probes run side by side: one waits for a banner and
// then starts a TLS handshake (a TLS server answers it; most others answer in
// their own protocol, which the first bytes name); the other sends an inline
// "PING" line, which line-based servers answer in words (Redis with +PONG or
// an error, and it drops a connection whose first bytes look like HTTP), and
// only then an HTTP request. A sluice edge names itself by its preface.
// A banner or an answer to PING ends the wait at once; otherwise the TLS
// probe's answer wins when it has one.
func probePeer(ctx context.Context, addr string, expectTLS bool) *WrongPeerError {
	ctx, cancel := context.WithTimeout(ctx, probeBudget)
	type tlsAnswer struct {
		wp      *WrongPeerError
		decided bool
	}
	tlsCh := make(chan tlsAnswer, 1)
	lineCh := make(chan *WrongPeerError, 1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		wp, decided := probeTLS(ctx, addr, expectTLS)
		tlsCh <- tlsAnswer{wp, decided}
	}()
	go func() {
		defer wg.Done()
		lineCh <- probeLineBased(ctx, addr, expectTLS)
	}()
	defer wg.Wait()
	defer cancel()
	var (
		line              *WrongPeerError
		tlsDone, lineDone bool
	)
	var tlsAns tlsAnswer
	for {
		select {
		case tlsAns = <-tlsCh:
			tlsDone = true
		case line = <-lineCh:
			lineDone = true
		}
		switch {
		case lineDone && lineCertain(line):
			return line
		case tlsDone && tlsAns.decided && !vague(tlsAns.wp):
			return tlsAns.wp
		case tlsDone && lineDone:
			if line != nil && (tlsAns.wp == nil || !tlsAns.decided) {
				return line
			}
			return tlsAns.wp
		}
	}
}

// lineCertain reports whether the line probe's answer names the peer beyond
// doubt: a banner or an answer to PING comes from no TLS server.
func lineCertain(wp *WrongPeerError) bool {
	return wp != nil && (wp.Kind == PeerRedis || wp.Kind == PeerSSH || wp.Kind == PeerLineBased)
}

// vague reports whether a TLS probe's answer is one the line probe may name
// better: Redis answers a ClientHello that happens to hold a newline with
// a bare -ERR.
func vague(wp *WrongPeerError) bool {
	return wp != nil && (wp.Kind == PeerLineBased || wp.Kind == PeerUnknown)
}

// probeTLS waits for a banner and then tries a TLS handshake; decided
// reports whether the peer gave an answer that names it (nil then means a
// sluice edge of the expected kind).
func probeTLS(ctx context.Context, addr string, expectTLS bool) (wp *WrongPeerError, decided bool) {
	c, stop := probeDial(ctx, addr)
	if c == nil {
		return nil, false
	}
	defer stop()
	buf := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(probeBanner))
	if n, _ := io.ReadAtLeast(c, buf, 1); n > 0 {
		return classifyFirstBytes(addr, buf[:n], expectTLS), true
	}
	c.SetReadDeadline(time.Time{})
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: "sluice-agent-probe"}) // only to see whether TLS answers
	err := tc.Handshake()
	var (
		alert tls.AlertError
		rh    tls.RecordHeaderError
	)
	switch {
	case err == nil || errors.As(err, &alert):
		return classifyFirstBytes(addr, []byte{0x16, 0x03}, expectTLS), true
	case errors.As(err, &rh):
		// Another protocol's first bytes, or a sluice edge's preface.
		return tlsRecordPeer(addr, err, expectTLS), true
	}
	return nil, false
}

// probeLineBased sends an inline PING line and reads the answer; a peer
// silent after probeLine gets an HTTP request on the same connection.
func probeLineBased(ctx context.Context, addr string, expectTLS bool) *WrongPeerError {
	c, stop := probeDial(ctx, addr)
	if c == nil {
		return nil
	}
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		c.SetWriteDeadline(dl)
	}
	buf := make([]byte, 64)
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return nil
	}
	c.SetReadDeadline(time.Now().Add(probeLine))
	n, err := io.ReadAtLeast(c, buf, 5)
	var ne net.Error
	if n == 0 && errors.As(err, &ne) && ne.Timeout() {
		if dl, ok := ctx.Deadline(); ok {
			c.SetReadDeadline(dl)
		}
		if _, err := io.WriteString(c, "GET /_sluice/healthz HTTP/1.1\r\nHost: sluice-agent-probe\r\nConnection: close\r\n\r\n"); err != nil {
			return nil
		}
		n, _ = io.ReadAtLeast(c, buf, 5)
	}
	return classifyFirstBytes(addr, buf[:n], expectTLS)
}

// probeDial opens a probe connection that ctx's end closes; stop releases it.
func probeDial(ctx context.Context, addr string) (net.Conn, func()) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil
	}
	unhook := context.AfterFunc(ctx, func() { c.Close() })
	return c, func() { unhook(); c.Close() }
}

// tlsRecordPeer names the peer from a failed TLS handshake's first record.
func tlsRecordPeer(addr string, err error, expectTLS bool) *WrongPeerError {
	var rh tls.RecordHeaderError
	if !errors.As(err, &rh) {
		return nil
	}
	return classifyFirstBytes(addr, rh.RecordHeader[:], expectTLS)
}
