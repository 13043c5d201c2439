package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/sluicehq/sluice/internal/h1"
)

// Upstream protocols: how the agent speaks to the local service.
const (
	UpstreamHTTP1 = "http1"
	UpstreamHTTP2 = "http2"
)

// Host header modes; any other non-empty HostHeader is sent literally.
const (
	HostPreserve = "preserve"
	HostRewrite  = "rewrite"
)

func validHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c <= ' ' || c >= 0x7f || c == '/' || c == '?' || c == '#' || c == '@' {
			return false
		}
	}
	return true
}

// needsParsing reports whether the tunnel's options need the agent to parse
// HTTP rather than pipe bytes to the local service.
func needsParsing(t Tunnel) bool {
	return t.UpstreamProtocol == UpstreamHTTP2 || t.UpstreamTLS != nil ||
		(t.HostHeader != "" && t.HostHeader != HostPreserve)
}

func upstreamScheme(t Tunnel) string {
	if t.UpstreamTLS != nil {
		return "https"
	}
	return "http"
}

// hostHeader is the Host the local service sees for a request whose public
// Host was public.
func hostHeader(t Tunnel, public string) string {
	switch t.HostHeader {
	case "", HostPreserve:
		return public
	case HostRewrite:
		return t.Local
	}
	return t.HostHeader
}

// newUpstreamTransport is the agent's pool of connections to the local
// service, speaking the tunnel's upstream protocol. Plain HTTP/1.1 puts
// h1.Pool's fast path for bodiless GETs and HEADs in front.
func newUpstreamTransport(t Tunnel) interface {
	http.RoundTripper
	CloseIdleConnections()
} {
	tr := newStdTransport(t)
	if t.UpstreamProtocol == UpstreamHTTP2 || t.UpstreamTLS != nil {
		return tr
	}
	d := &net.Dialer{Timeout: 10 * time.Second}
	return &h1.Pool{
		Dial: func(ctx context.Context, _ *http.Request) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", t.Local)
		},
		MaxIdle:     256,
		IdleTimeout: 90 * time.Second,
		Fallback:    tr,
	}
}

func newStdTransport(t Tunnel) *http.Transport {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		Protocols:             new(http.Protocols),
	}
	if t.UpstreamTLS != nil {
		tr.TLSClientConfig = t.UpstreamTLS.Clone()
		tr.TLSHandshakeTimeout = 10 * time.Second
	}
	switch {
	case t.UpstreamProtocol != UpstreamHTTP2:
		tr.Protocols.SetHTTP1(true)
	case t.UpstreamTLS != nil:
		tr.Protocols.SetHTTP2(true)
	default:
		// Prior knowledge: a gRPC server on a plain port speaks only h2c.
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return tr
}

// The fix for a local service whose certificate the agent does not trust,
// in the words of the sluice command, which is how such a tunnel is set up.
const (
	upstreamTLSFix         = "trust the CA that signed it (--upstream-ca FILE) or skip verification for this local service (--upstream-insecure)"
	upstreamTLSFixSentence = "Trust the CA that signed it (--upstream-ca FILE), or skip verification for this local service (--upstream-insecure)"
)

// certRefused reports whether err is the agent refusing a peer's
// certificate (the edge's or a local service's), as opposed to not reaching
// the peer at all.
func certRefused(err error) bool {
	var (
		unknown  x509.UnknownAuthorityError
		invalid  x509.CertificateInvalidError
		hostname x509.HostnameError
		verify   *tls.CertificateVerificationError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &invalid) || errors.As(err, &hostname)
}
