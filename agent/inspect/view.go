package inspect

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The JSON shapes of the API. Summary is a row of the live list; Detail
// adds headers and bodies.

// Summary is one entry in GET /api/requests and in the live event stream.
type Summary struct {
	ID         uint64  `json:"id"`
	Tunnel     int     `json:"tunnel"`
	Time       string  `json:"time"`
	Method     string  `json:"method"`
	Path       string  `json:"path"`
	Host       string  `json:"host"`
	Status     int     `json:"status"`
	DurationMS float64 `json:"duration_ms"`
	ReqSize    int64   `json:"req_size"`
	RespSize   int64   `json:"resp_size"`
	Replay     bool    `json:"replay"`
	ReplayOf   uint64  `json:"replay_of,omitempty"`
	Error      string  `json:"error,omitempty"`
	RefusedBy  string  `json:"refused_by,omitempty"`
}

// Detail is GET /api/requests/{id}.
type Detail struct {
	Summary
	Proto      string  `json:"proto"`
	RemoteAddr string  `json:"remote_addr"`
	Request    Message `json:"request"`
	Response   Message `json:"response"`
	// Curl repeats the request against the public URL; header values are
	// masked in it unless revealed.
	Curl     string `json:"curl"`
	Revealed bool   `json:"revealed"`
}

// Message is one side's headers and body.
type Message struct {
	Headers [][2]string `json:"headers"`
	Body    BodyView    `json:"body"`
}

// BodyView shows a body the ways the page offers: raw text, pretty JSON,
// decoded form fields, or a hex preview of binary data.
type BodyView struct {
	Size        int64       `json:"size"`     // bytes that crossed
	Captured    int         `json:"captured"` // bytes kept
	Truncated   bool        `json:"truncated"`
	ContentType string      `json:"content_type,omitempty"`
	Kind        string      `json:"kind"` // empty, json, form, text or binary
	Text        string      `json:"text,omitempty"`
	Pretty      string      `json:"pretty,omitempty"`
	Form        [][2]string `json:"form,omitempty"`
	Hex         string      `json:"hex,omitempty"`
}

// sensitive headers are masked unless the user reveals them.
var sensitive = map[string]bool{"Authorization": true, "Proxy-Authorization": true, "Cookie": true, "Set-Cookie": true}

// masked stands for a hidden value, saying how long it is.
func masked(v string) string {
	return "•••••• (" + strconv.Itoa(len(v)) + " characters hidden)"
}

func summarize(e *Entry) Summary {
	path := e.URI
	return Summary{
		ID: e.ID, Tunnel: e.Tunnel, Time: e.Time.UTC().Format("2006-01-02T15:04:05.000Z"),
		Method: e.Method, Path: path, Host: e.Host, Status: e.Status,
		DurationMS: float64(e.Duration.Microseconds()) / 1000,
		ReqSize:    e.ReqSize, RespSize: e.RespSize, Replay: e.ReplayOf != 0, ReplayOf: e.ReplayOf, Error: e.Err,
		RefusedBy: e.RefusedBy,
	}
}

func detail(e *Entry, reveal bool) Detail {
	return Detail{
		Summary: summarize(e), Proto: e.Proto, RemoteAddr: e.RemoteAddr, Revealed: reveal,
		Request:  Message{Headers: headerList(e.ReqHeader, reveal), Body: viewBody(e.ReqBody, e.ReqSize, e.ReqTruncated, e.ReqHeader.Get("Content-Type"))},
		Response: Message{Headers: headerList(e.RespHeader, reveal), Body: viewBody(e.RespBody, e.RespSize, e.RespTruncated, e.RespHeader.Get("Content-Type"))},
		Curl:     curlCommand(e, reveal),
	}
}

func headerList(h http.Header, reveal bool) [][2]string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := [][2]string{}
	for _, k := range keys {
		for _, v := range h[k] {
			if sensitive[http.CanonicalHeaderKey(k)] && !reveal {
				v = masked(v)
			}
			out = append(out, [2]string{k, v})
		}
	}
	return out
}

const hexPreview = 512

func viewBody(b []byte, size int64, truncated bool, ctype string) BodyView {
	v := BodyView{Size: size, Captured: len(b), Truncated: truncated, ContentType: ctype}
	if size == 0 {
		v.Kind = "empty"
		return v
	}
	mt, _, _ := mime.ParseMediaType(ctype)
	textual := utf8.Valid(b) && !bytes.ContainsRune(b, 0)
	switch {
	case textual && (mt == "application/json" || strings.HasSuffix(mt, "+json") || (mt == "" && json.Valid(b))):
		v.Kind, v.Text = "json", string(b)
		var out bytes.Buffer
		if !truncated && json.Indent(&out, b, "", "  ") == nil {
			v.Pretty = out.String()
		}
	case textual && mt == "application/x-www-form-urlencoded":
		v.Kind, v.Text = "form", string(b)
		if q, err := url.ParseQuery(string(b)); err == nil {
			keys := make([]string, 0, len(q))
			for k := range q {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				for _, val := range q[k] {
					v.Form = append(v.Form, [2]string{k, val})
				}
			}
		}
	case textual:
		v.Kind, v.Text = "text", string(b)
	default:
		v.Kind = "binary"
		v.Hex = hex.Dump(b[:min(len(b), hexPreview)])
	}
	return v
}

// curlCommand repeats e against the public URL the client used.
func curlCommand(e *Entry, reveal bool) string {
	scheme := "http"
	if p := e.ReqHeader.Get("X-Forwarded-Proto"); p == "https" {
		scheme = "https"
	}
	var b strings.Builder
	b.WriteString("curl")
	if e.Method != http.MethodGet {
		b.WriteString(" -X " + shellQuote(e.Method))
	}
	b.WriteString(" " + shellQuote(scheme+"://"+e.Host+e.URI))
	skip := map[string]bool{"Content-Length": true, "X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true, "Accept-Encoding": true, "Connection": true}
	for _, kv := range headerList(e.ReqHeader, reveal) {
		if skip[http.CanonicalHeaderKey(kv[0])] {
			continue
		}
		b.WriteString(" -H " + shellQuote(kv[0]+": "+kv[1]))
	}
	if e.ReqSize > 0 {
		switch {
		case e.ReqTruncated:
			b.WriteString(" --data-binary @BODY_FILE  # the body was larger than the capture limit")
		case utf8.Valid(e.ReqBody):
			b.WriteString(" --data-binary " + shellQuote(string(e.ReqBody)))
		default:
			b.WriteString(" --data-binary @BODY_FILE  # binary body: save it to a file first")
		}
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
