package inspect

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
)

// The page is the project's own: a template and a small script and style
// sheet, all embedded and served from here (no CDN), which the
// Content-Security-Policy set in guard insists on.

//go:embed static
var staticFiles embed.FS

var pageTmpl = template.Must(template.ParseFS(staticFiles, "static/index.html"))

type pageData struct {
	Port        string
	BodyLimit   string
	MaxRequests int
}

// humanBytes writes 1048576 as "1 MiB".
func humanBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

func (in *Inspector) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	pageTmpl.Execute(w, pageData{Port: in.port, BodyLimit: humanBytes(in.cfg.BodyLimit), MaxRequests: in.cfg.MaxRequests})
}

var staticServer = func() http.Handler {
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.StripPrefix("/static/", http.FileServerFS(sub))
}()

func (in *Inspector) static(w http.ResponseWriter, r *http.Request) {
	staticServer.ServeHTTP(w, r)
}
