package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
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
	PeerLineBased   PeerKind = "line"         // a line-based server such as Redis, SMTP or FTP
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
	case PeerLineBased:
		what = "a line-based server (Redis, SMTP, FTP or similar)"
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
	case b[0] == '-' || b[0] == '+' || bytes.HasPrefix(b, []byte("220")):
		kind = PeerLineBased
	}
	return &WrongPeerError{Addr: addr, Kind: kind, First: first}
}

// Probe timings: how long to listen for a server that speaks first (SSH,
// SMTP), for a TLS handshake, then for an answer to an HTTP request.
const (
	probeBanner = 400 * time.Millisecond
	probeTLS    = time.Second
	probeAnswer = 1500 * time.Millisecond
)

// probePeer opens separate connections to addr and finds out what listens
// there: it waits briefly for a banner, then starts a TLS handshake (a TLS
// server answers it; most others answer in their own protocol, which the
// first bytes name), and last sends an HTTP request, which line-based
// servers refuse in words. A sluice edge names itself by its preface.
func probePeer(ctx context.Context, addr string, expectTLS bool) *WrongPeerError {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	buf := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(probeBanner))
	if n, _ := io.ReadAtLeast(c, buf, 1); n > 0 {
		return classifyFirstBytes(addr, buf[:n], expectTLS)
	}
	c.SetDeadline(time.Now().Add(probeTLS))
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: "sluice-agent-probe"}) // only to see whether TLS answers
	err = tc.Handshake()
	var alert tls.AlertError
	switch {
	case err == nil || errors.As(err, &alert):
		return classifyFirstBytes(addr, []byte{0x16, 0x03}, expectTLS)
	case tlsRecordPeer(addr, err, expectTLS) != nil:
		return tlsRecordPeer(addr, err, expectTLS)
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		return nil // a sluice edge named itself
	}
	c2, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil
	}
	defer c2.Close()
	stop2 := context.AfterFunc(ctx, func() { c2.Close() })
	defer stop2()
	c2.SetDeadline(time.Now().Add(probeAnswer))
	if _, err := io.WriteString(c2, "GET /_sluice/healthz HTTP/1.1\r\nHost: sluice-agent-probe\r\nConnection: close\r\n\r\n"); err != nil {
		return nil
	}
	n, _ := io.ReadAtLeast(c2, buf, 5)
	return classifyFirstBytes(addr, buf[:n], expectTLS)
}

// tlsRecordPeer names the peer from a failed TLS handshake's first record.
func tlsRecordPeer(addr string, err error, expectTLS bool) *WrongPeerError {
	var rh tls.RecordHeaderError
	if !errors.As(err, &rh) {
		return nil
	}
	return classifyFirstBytes(addr, rh.RecordHeader[:], expectTLS)
}
