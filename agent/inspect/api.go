package inspect

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/internal/page"
)

func (in *Inspector) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", in.page)
	mux.HandleFunc("GET /static/", in.static)
	mux.HandleFunc("GET /api/requests", in.listRequests)
	mux.HandleFunc("GET /api/requests/{id}", in.getRequest)
	mux.HandleFunc("POST /api/requests/{id}/replay", in.replay)
	mux.HandleFunc("GET /api/events", in.events)
	return in.guard(mux)
}

func (in *Inspector) cookieName() string { return "sluice_inspector_" + in.port }

// guard refuses what must never reach the handlers: a Host that is not
// this inspector (a rebound DNS name), an Origin that is not this page, a
// cross-site fetch, and anyone without the secret.
func (in *Inspector) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page.Private(w.Header())
		if !in.hostAllowed(r.Host) {
			http.Error(w, fmt.Sprintf("403 forbidden: the inspector answers only to its own address (127.0.0.1:%s or localhost:%s), not Host %q", in.port, in.port, r.Host), http.StatusForbidden)
			return
		}
		if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host {
			http.Error(w, fmt.Sprintf("403 forbidden: requests from another origin (%q) may not read or replay captured traffic", o), http.StatusForbidden)
			return
		}
		if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
			http.Error(w, "403 forbidden: cross-site requests may not read or replay captured traffic", http.StatusForbidden)
			return
		}
		if r.URL.Path == "/" && r.URL.Query().Has("secret") {
			in.login(w, r)
			return
		}
		if !in.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice inspector"`)
			if strings.HasPrefix(r.URL.Path, "/api/") {
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized: send the secret printed by sluice as Authorization: Bearer SECRET, or open the printed inspector link"})
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintln(w, "401 unauthorized: open the inspector through the link sluice printed (the line \"inspector: http://...?secret=...\").")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// hostAllowed accepts the inspector's port on an IP literal or localhost:
// a DNS name that resolves here by rebinding is anything else.
func (in *Inspector) hostAllowed(host string) bool {
	h, p, err := net.SplitHostPort(host)
	if err != nil || p != in.port {
		return false
	}
	return strings.EqualFold(h, "localhost") || net.ParseIP(h) != nil
}

func (in *Inspector) secretMatches(s string) bool {
	a, b := sha256.Sum256([]byte(s)), sha256.Sum256([]byte(in.cfg.Secret))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

func (in *Inspector) authorized(r *http.Request) bool {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return in.secretMatches(tok)
	}
	if c, err := r.Cookie(in.cookieName()); err == nil {
		return in.secretMatches(c.Value)
	}
	return false
}

// login trades the link's secret for a cookie and drops it from the
// address bar (and so from the history).
func (in *Inspector) login(w http.ResponseWriter, r *http.Request) {
	if !in.secretMatches(r.URL.Query().Get("secret")) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintln(w, "401 unauthorized: this link's secret is not this inspector's; sluice prints a fresh link each run.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: in.cookieName(), Value: in.cfg.Secret, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// filter is the list's query: every field given must match.
type filter struct {
	method, path, header string
	statusLo, statusHi   int
	minDur, maxDur       time.Duration
	minSize, maxSize     int64
	limit                int
}

func parseFilter(r *http.Request) (filter, error) {
	q := r.URL.Query()
	f := filter{method: strings.ToUpper(q.Get("method")), path: q.Get("path"), header: strings.ToLower(q.Get("header")), maxSize: -1, maxDur: -1, limit: 1000}
	if s := q.Get("status"); s != "" {
		// 404, or a class: 4xx.
		if len(s) == 3 && strings.HasSuffix(strings.ToLower(s), "xx") && s[0] >= '1' && s[0] <= '5' {
			c := int(s[0]-'0') * 100
			f.statusLo, f.statusHi = c, c+99
		} else if n, err := strconv.Atoi(s); err == nil {
			f.statusLo, f.statusHi = n, n
		} else {
			return f, fmt.Errorf("status %q: give a code (404) or a class (4xx)", s)
		}
	}
	durs := []struct {
		key string
		dst *time.Duration
	}{{"min_duration_ms", &f.minDur}, {"max_duration_ms", &f.maxDur}}
	for _, d := range durs {
		if s := q.Get(d.key); s != "" {
			ms, err := strconv.ParseFloat(s, 64)
			if err != nil || ms < 0 {
				return f, fmt.Errorf("%s %q: give milliseconds, e.g. 250", d.key, s)
			}
			*d.dst = time.Duration(ms * float64(time.Millisecond))
		}
	}
	sizes := []struct {
		key string
		dst *int64
	}{{"min_size", &f.minSize}, {"max_size", &f.maxSize}}
	for _, d := range sizes {
		if s := q.Get(d.key); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				return f, fmt.Errorf("%s %q: give a byte count, e.g. 1024", d.key, s)
			}
			*d.dst = n
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return f, fmt.Errorf("limit %q: give a positive count", s)
		}
		f.limit = n
	}
	return f, nil
}

// keep reports whether e matches. Size is the larger of request and
// response; header text matches any "Name: value" line of either side.
func (f filter) keep(e *Entry) bool {
	if f.method != "" && e.Method != f.method {
		return false
	}
	if f.path != "" && !strings.Contains(e.URI, f.path) {
		return false
	}
	if f.statusHi != 0 && (e.Status < f.statusLo || e.Status > f.statusHi) {
		return false
	}
	if e.Duration < f.minDur || (f.maxDur >= 0 && e.Duration > f.maxDur) {
		return false
	}
	size := max(e.ReqSize, e.RespSize)
	if size < f.minSize || (f.maxSize >= 0 && size > f.maxSize) {
		return false
	}
	if f.header != "" && !headerContains(e.ReqHeader, f.header) && !headerContains(e.RespHeader, f.header) {
		return false
	}
	return true
}

func headerContains(h http.Header, needle string) bool {
	for k, vs := range h {
		for _, v := range vs {
			if sensitive[k] {
				v = "" // a filter must not become an oracle for hidden values
			}
			if strings.Contains(strings.ToLower(k+": "+v), needle) {
				return true
			}
		}
	}
	return false
}

func (in *Inspector) listRequests(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	entries := in.ring.list(f.keep, f.limit)
	out := struct {
		Requests []Summary `json:"requests"`
		Held     int       `json:"held"`
		Bytes    int64     `json:"bytes"`
	}{Requests: make([]Summary, 0, len(entries))}
	for _, e := range entries {
		out.Requests = append(out.Requests, summarize(e))
	}
	out.Held, out.Bytes = in.ring.usage()
	writeJSON(w, http.StatusOK, out)
}

func (in *Inspector) entry(w http.ResponseWriter, r *http.Request) (*Entry, bool) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		apiError(w, http.StatusBadRequest, "request id %q is not a number", r.PathValue("id"))
		return nil, false
	}
	e, ok := in.ring.get(id)
	if !ok {
		apiError(w, http.StatusNotFound, "request %d is not held (any more): the inspector keeps the latest %d requests", id, in.cfg.MaxRequests)
		return nil, false
	}
	return e, true
}

func (in *Inspector) getRequest(w http.ResponseWriter, r *http.Request) {
	e, ok := in.entry(w, r)
	if !ok {
		return
	}
	reveal := r.URL.Query().Get("reveal") == "1"
	writeJSON(w, http.StatusOK, detail(e, reveal))
}

// events streams each new entry's Summary as a Server-Sent Event named
// "request". A client that falls behind is cut off; EventSource then
// reconnects and the page reloads the list.
func (in *Inspector) events(w http.ResponseWriter, r *http.Request) {
	// Subscribe before the client learns the stream is open: the page
	// loads the list when it opens, and an entry added in between must
	// come through one or the other.
	ch := in.ring.subscribe()
	defer in.ring.unsubscribe(ch)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 1000\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return
			}
			b, _ := json.Marshal(summarize(e))
			fmt.Fprintf(w, "event: request\ndata: %s\n\n", b)
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
		case <-r.Context().Done():
			return
		case <-in.done:
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
