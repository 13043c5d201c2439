// Package page writes the small HTML pages sluice answers with itself
// (tunnel offline, no tunnel here, local service unreachable), the same on
// the edge and on the agent.
package page

import (
	"fmt"
	"html"
	"net/http"
)

// Write sends a status page. title and text are escaped, since they can echo
// what the client sent (the Host header); footer names who answered.
func Write(w http.ResponseWriter, code int, title, text, footer string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintf(w, "<!doctype html><html><head><meta charset=\"utf-8\"><title>%d %s</title></head>"+
		"<body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\"><h1>%d %s</h1><p>%s</p><hr><p><small>%s</small></p></body></html>\n",
		code, html.EscapeString(title), code, html.EscapeString(title), html.EscapeString(text), html.EscapeString(footer))
}

// Private sets the headers of a page meant for its own origin only (the
// inspector, the console): never cached, framed or sniffed, no referrer
// sent elsewhere, and scripts, styles, images and form targets from its own
// origin only. The referrer stays within the origin rather than off
// altogether: with no-referrer, chromium sends a form's POST with
// Origin: null, which the pages' own same-origin check must refuse.
func Private(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
}
