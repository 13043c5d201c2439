package console

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/internal/observe"
)

// The pages are the project's own: templates, a style sheet and a small
// script, embedded and served from here (no CDN), which the
// Content-Security-Policy set in guard insists on. Every page renders on
// the server and reads without JavaScript; the script only swaps in the
// fresh page body the event stream sends.

//go:embed static
var staticFiles embed.FS

type usage struct {
	Used    int64
	MaxText string
	Pct     int
}

func makeUse(used int64, max int) usage {
	u := usage{Used: used, MaxText: "no limit"}
	if max > 0 {
		u.MaxText = fmt.Sprint(max)
		u.Pct = int(min(100, used*100/int64(max)))
	}
	return u
}

// consolePages parses the pages on first use: parsing costs some 190 KB
// and 3,000 allocations, which an edge without --admin would pay at start
// for nothing.
var consolePages = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("console").Funcs(template.FuncMap{
		"pages": func() []string { return pageOrder },
		"title": func(p string) string { return pageTitles[p] },
		"path": func(p string) string {
			if p == "overview" {
				return "/"
			}
			return "/" + p
		},
		"ago":   ago,
		"until": until,
		"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"clock": func(t time.Time) string { return t.UTC().Format("15:04:05 UTC") },
		"date":  func(t time.Time) string { return t.UTC().Format("2006-01-02") },
		"bytes": observe.Bytes,
		"rate":  humanRate,
		"add":   func(a, b float64) float64 { return a + b },
		"ms": func(d time.Duration) string {
			if d <= 0 {
				return "—"
			}
			if d < time.Millisecond {
				return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000)
			}
			return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
		},
		"soon": func(now, t time.Time) bool { return !t.IsZero() && t.Sub(now) < 14*24*time.Hour },
		"days": func(now, t time.Time) string {
			d := int(t.Sub(now).Hours() / 24)
			if d < 0 {
				return "expired"
			}
			if d == 1 {
				return "1 day"
			}
			return fmt.Sprint(d, " days")
		},
		"use":   func(used, max int) usage { return makeUse(int64(used), max) },
		"use64": makeUse,
	}).ParseFS(staticFiles, "static/console.html"))
})

var staticServer = func() http.Handler {
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.StripPrefix("/static/", http.FileServerFS(sub))
}()

func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	auth := c.requireAuth
	mux.HandleFunc("GET /login", c.loginPage)
	mux.HandleFunc("POST /login", c.login)
	mux.Handle("POST /logout", auth(http.HandlerFunc(c.logout)))
	mux.Handle("GET /static/", staticServer)
	for _, p := range pageOrder {
		path := "/" + p
		if p == "overview" {
			path = "/{$}"
		}
		mux.Handle("GET "+path, auth(c.page(p)))
	}
	mux.Handle("GET /events", auth(http.HandlerFunc(c.events)))
	mux.Handle("GET /api/snapshot", auth(http.HandlerFunc(c.apiSnapshot)))
	mux.Handle("GET /confirm/{action}", auth(http.HandlerFunc(c.confirm)))
	mux.Handle("POST /actions/{action}", auth(http.HandlerFunc(c.act)))
	return c.guard(mux)
}

// view builds the page's view for the request's signed-in browser.
func (c *Console) view(page string, r *http.Request) *view {
	smp, _ := c.live.latest()
	v := build(page, smp, time.Now())
	a := authOf(r)
	v.Who = a.actor.Name
	if a.sess != nil {
		v.CSRF = a.sess.csrf
	}
	v.Actions = c.audit.recent()
	return v
}

func (c *Console) page(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := c.view(name, r)
		if a := authOf(r); a.sess != nil {
			v.Flash, v.FlashBad = c.sessions.takeFlash(a.sess)
		}
		render(w, http.StatusOK, "layout", v)
	})
}

func render(w http.ResponseWriter, code int, name string, data any) {
	var buf bytes.Buffer
	if err := consolePages().ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "500 internal error: rendering the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

func (c *Console) renderLogin(w http.ResponseWriter, code int, next, msg string, out bool) {
	render(w, code, "login", struct {
		Next, Error, TTL string
		Out              bool
	}{safeNext(next), msg, ttlText(c.cfg.SessionTTL), out})
}

// ttlText writes a sign-in's lifetime as people say it: "12 hours".
func ttlText(d time.Duration) string {
	switch {
	case d%time.Hour == 0 && d > time.Hour:
		return fmt.Sprint(int(d.Hours()), " hours")
	case d%time.Minute == 0 && d < time.Hour:
		return fmt.Sprint(int(d.Minutes()), " minutes")
	}
	return d.String()
}

// events streams the page's main part, rendered afresh at every sample, as
// Server-Sent Events named "main". The page asks for its own name in
// ?page=.
func (c *Console) events(w http.ResponseWriter, r *http.Request) {
	page := r.URL.Query().Get("page")
	if _, ok := pageTitles[page]; !ok {
		apiError(w, http.StatusBadRequest, "page %q: give one of %s", page, strings.Join(pageOrder, ", "))
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	a := authOf(r)
	var buf bytes.Buffer
	for {
		_, updated := c.live.latest()
		select {
		case <-updated:
			// A browser signed out (or expired) stops receiving at once; its
			// reconnection then gets a 401 and the page goes to sign-in.
			if a.sess != nil && c.sessions.get(a.sess.id, time.Now()) == nil {
				return
			}
			buf.Reset()
			if err := consolePages().ExecuteTemplate(&buf, "main", c.view(page, r)); err != nil {
				return
			}
			w.Write([]byte("event: main\n"))
			for line := range bytes.Lines(buf.Bytes()) {
				w.Write([]byte("data: "))
				w.Write(bytes.TrimRight(line, "\r\n"))
				w.Write([]byte("\n"))
			}
			w.Write([]byte("\n"))
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
		case <-r.Context().Done():
			return
		case <-c.stop:
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// apiSnapshot returns every edge's latest snapshot, for scripts.
func (c *Console) apiSnapshot(w http.ResponseWriter, r *http.Request) {
	smp, _ := c.live.latest()
	snaps := append([]Snapshot(nil), smp.snaps...)
	sortSnapshots(snaps)
	writeJSON(w, http.StatusOK, struct {
		Edges []Snapshot `json:"edges"`
	}{snaps})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func apiError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, map[string]string{"error": fmt.Sprintf(format, args...)})
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
