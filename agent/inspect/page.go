package inspect

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"sync"

	"github.com/sluicehq/sluice/internal/observe"
)

// The page is the project's own: a template and a small script and style
// sheet, all embedded and served from here (no CDN), which the
// Content-Security-Policy set in guard insists on.

//go:embed static
var staticFiles embed.FS

// pageTmpl parses the page on first use, not at the start of every agent,
// most of which never serve it.
var pageTmpl = sync.OnceValue(func() *template.Template {
	return template.Must(template.ParseFS(staticFiles, "static/index.html"))
})

type pageData struct {
	Port        string
	BodyLimit   string
	MaxRequests int
}

func (in *Inspector) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	pageTmpl().Execute(w, pageData{Port: in.port, BodyLimit: observe.Bytes(in.cfg.BodyLimit), MaxRequests: in.cfg.MaxRequests})
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
