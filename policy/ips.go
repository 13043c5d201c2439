package policy

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

type restrictIPs struct {
	allow, deny []netip.Prefix
}

func newRestrictIPs(c *RestrictIPs) (*restrictIPs, error) {
	if len(c.Allow)+len(c.Deny) == 0 {
		return nil, fmt.Errorf("give allow or deny (CIDRs such as 10.0.0.0/8 or 2001:db8::/32)")
	}
	var a restrictIPs
	for i, s := range c.Allow {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("allow[%d]: %v", i, err)
		}
		a.allow = append(a.allow, p)
	}
	for i, s := range c.Deny {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("deny[%d]: %v", i, err)
		}
		a.deny = append(a.deny, p)
	}
	return &a, nil
}

// parsePrefix reads a CIDR or a single address (a /32 or /128). IPv4
// inside IPv6 (::ffff:10.0.0.0/104) is read as IPv4, as client addresses
// are.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is neither a CIDR nor an address", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR (write it like 10.0.0.0/8 or 2001:db8::/32)", s)
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

func (*restrictIPs) kind() string { return "restrict-ips" }

// allowed: a deny entry wins; with an allow list, the address must be in it.
func (a *restrictIPs) allowed(addr netip.Addr) bool {
	for _, p := range a.deny {
		if p.Contains(addr) {
			return false
		}
	}
	if len(a.allow) == 0 {
		return true
	}
	for _, p := range a.allow {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

func (a *restrictIPs) conn(x *exchange) *Decision {
	if a.allowed(x.in.client.Addr()) {
		return nil
	}
	return x.decide(0, true)
}

func (a *restrictIPs) request(x *exchange) *Decision {
	if a.allowed(x.in.client.Addr()) {
		return nil
	}
	return x.refuse(http.StatusForbidden, "Forbidden", "This tunnel does not accept requests from your address ("+x.in.client.Addr().String()+").")
}
