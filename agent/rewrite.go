package agent

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// rewriteLocations points Location, Content-Location and Refresh URLs that
// name the local service at the public URL the client used instead, so a
// redirect neither leaks the local address nor sends the client (curl -L, a
// browser) to a host it cannot reach.
func rewriteLocations(r *http.Response, local, sentHost string) {
	req := r.Request
	if req == nil {
		return
	}
	public := publicBase(req)
	if public == "" {
		return
	}
	for _, k := range [...]string{"Location", "Content-Location"} {
		if v := r.Header.Get(k); v != "" {
			if nv, ok := rewriteURL(v, local, sentHost, public); ok {
				r.Header.Set(k, nv)
			}
		}
	}
	if cookies := r.Header["Set-Cookie"]; len(cookies) > 0 {
		publicHost := public[strings.Index(public, "://")+3:]
		if h, _, err := net.SplitHostPort(publicHost); err == nil {
			publicHost = h
		}
		for i, c := range cookies {
			cookies[i] = rewriteCookieDomain(c, local, sentHost, publicHost)
		}
	}
	if v := r.Header.Get("Refresh"); v != "" {
		// "5; url=http://localhost:3000/next"
		lower := strings.ToLower(v)
		if i := strings.Index(lower, "url="); i >= 0 {
			target := strings.Trim(v[i+4:], `"' `)
			if nv, ok := rewriteURL(target, local, sentHost, public); ok {
				r.Header.Set("Refresh", v[:i+4]+nv)
			}
		}
	}
}

// rewriteCookieDomain points a Set-Cookie whose Domain names the local
// service's host (its host, a loopback name when it listens on loopback, or
// the Host that was sent to it) at the public host, as Location is: a
// browser drops a cookie whose Domain does not match the host it came from.
// Other cookies and attributes are left as written.
func rewriteCookieDomain(cookie, local, sentHost, publicHost string) string {
	parts := strings.Split(cookie, ";")
	for i, p := range parts[1:] {
		name, value, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(name), "domain") {
			continue
		}
		domain := strings.TrimPrefix(strings.TrimSpace(value), ".")
		if domain == "" || strings.EqualFold(domain, publicHost) || !namesLocal(domain, local, sentHost) {
			return cookie
		}
		parts[i+1] = " Domain=" + publicHost
		return strings.Join(parts, ";")
	}
	return cookie
}

// namesLocal reports whether host (no port) is the local service's host.
func namesLocal(host, local, sentHost string) bool {
	lh, _, err := net.SplitHostPort(local)
	if err != nil {
		lh = local
	}
	if strings.EqualFold(host, lh) || (loopbackName(lh) && loopbackName(host)) {
		return true
	}
	if sh, _, err := net.SplitHostPort(sentHost); err == nil {
		sentHost = sh
	}
	return sentHost != "" && strings.EqualFold(host, sentHost)
}

// publicBase is scheme://host of the URL the public client used, from the
// headers the edge set.
func publicBase(req *http.Request) string {
	host := firstValue(req.Header.Get("X-Forwarded-Host"))
	proto := firstValue(req.Header.Get("X-Forwarded-Proto"))
	if host == "" {
		return ""
	}
	if proto != "https" {
		proto = "http"
	}
	return proto + "://" + host
}

func firstValue(v string) string {
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v)
}

// rewriteURL replaces the scheme and host of an absolute URL that points at
// the local service (its address, a loopback alias with its port, or the
// Host header the agent sent it) with public.
func rewriteURL(v, local, sentHost, public string) (string, bool) {
	u, err := url.Parse(v)
	if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", false
	}
	if !pointsAtLocal(u, local, sentHost, public) {
		return "", false
	}
	rest := *u
	rest.Scheme, rest.Host, rest.User = "", "", nil
	return public + rest.String(), true
}

func pointsAtLocal(u *url.URL, local, sentHost, public string) bool {
	if strings.EqualFold(u.Host, local) {
		return true
	}
	if sentHost != "" && strings.EqualFold(u.Host, sentHost) && !strings.HasSuffix(public, "://"+strings.ToLower(sentHost)) {
		return true // HostHeader rewrote the Host and the app echoed it
	}
	lh, lp, err := net.SplitHostPort(local)
	if err != nil {
		return false
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return port == lp && loopbackName(lh) && loopbackName(u.Hostname())
}

func loopbackName(h string) bool {
	if strings.EqualFold(h, "localhost") || h == "0.0.0.0" || h == "::" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
