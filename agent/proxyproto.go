package agent

import (
	"fmt"
	"io"
	"net/netip"

	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/internal/proxyproto"
)

// checkProxyProtocol refuses a PROXY protocol setting the tunnel cannot
// honour: the header goes at the start of a byte stream to Local, so the
// agent must not be parsing HTTP itself, nor handing connections to Accept.
func checkProxyProtocol(field string, i int, t Tunnel) error {
	if t.ProxyProtocol == "" {
		return nil
	}
	field += ".ProxyProtocol"
	if _, err := proxyproto.ParseVersion(t.ProxyProtocol); err != nil {
		return configErr(field, "tunnel %d: %v", i+1, err)
	}
	switch {
	case t.Kind == control.KindUDP:
		return configErr(field, "tunnel %d: PROXY protocol is for tcp and http tunnels; a UDP tunnel cannot carry it", i+1)
	case t.listener != nil:
		return configErr(field, "tunnel %d: PROXY protocol is written to a local service; a Listen tunnel has none (its connections' RemoteAddr is the client already)", i+1)
	case t.Kind == control.KindHTTP && (t.LogRequests || t.Handler != nil || t.Fallback != nil):
		return configErr(field, "tunnel %d: PROXY protocol needs an HTTP tunnel that pipes bytes: turn request logging off and set no Handler or Fallback", i+1)
	}
	return nil
}

// checkAssigned makes sure the edge honoured the tunnel's PROXY protocol
// request: an older edge ignores the field, and would then share HTTP
// streams between clients and send no local address.
func (ts *tunnelState) checkAssigned(m control.Assigned, edge string) error {
	if ts.cfg.ProxyProtocol == "" || m.ProxyProtocol == ts.cfg.ProxyProtocol {
		return nil
	}
	return &control.Error{Ref: m.Ref, Code: control.CodeBadRequest, Message: fmt.Sprintf(
		"the edge at %s does not support the PROXY protocol (it runs an older sluice): upgrade the edge, or drop the PROXY protocol setting", edge)}
}

// writeProxyHeader starts a local connection with the header naming the
// public client and the address it connected to.
func writeProxyHeader(w io.Writer, version string, hdr control.StreamHeader) error {
	v, err := proxyproto.ParseVersion(version)
	if err != nil {
		return err
	}
	// An address that does not parse is written as "unknown", never guessed.
	src, _ := netip.ParseAddrPort(hdr.RemoteAddr)
	dst, _ := netip.ParseAddrPort(hdr.LocalAddr)
	var buf [232]byte
	_, err = w.Write(proxyproto.Append(buf[:0], v, src, dst))
	return err
}
