package inspect

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ReplayRequest is the optional body of POST /api/requests/{id}/replay:
// what to change before sending the captured request again. Fields left
// out keep the captured values.
type ReplayRequest struct {
	Method string `json:"method,omitempty"`
	// Path is the request URI: path and query.
	Path string `json:"path,omitempty"`
	// Headers, when given, replace the request's headers entirely.
	// Masked values the page showed are not accepted back: a header whose
	// value is the mask keeps its captured value.
	Headers [][2]string `json:"headers,omitempty"`
	// Body (text) or BodyBase64 (any bytes), when given, replace the body.
	Body       *string `json:"body,omitempty"`
	BodyBase64 *string `json:"body_base64,omitempty"`
}

// replayTimeout bounds how long a replay waits for the local service.
const replayTimeout = time.Minute

// replay sends a captured request again through its tunnel's handler (the
// same proxy, rewriting and forwarded headers as the tunnel), modified as
// asked, and answers with the new entry's summary.
func (in *Inspector) replay(w http.ResponseWriter, r *http.Request) {
	e, ok := in.entry(w, r)
	if !ok {
		return
	}
	var mod ReplayRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, in.cfg.BodyLimit+64<<10))
	if err != nil {
		apiError(w, http.StatusBadRequest, "reading the replay request: %v", err)
		return
	}
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&mod); err != nil {
			apiError(w, http.StatusBadRequest, "the replay body is not a valid modification (method, path, headers, body, body_base64): %v", err)
			return
		}
	}
	in.mu.Lock()
	next := in.handlers[e.Tunnel]
	in.mu.Unlock()
	if next == nil {
		apiError(w, http.StatusConflict, "tunnel %d of request %d is not served by this agent", e.Tunnel, e.ID)
		return
	}
	req, err := in.rebuild(e, mod)
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), replayTimeout)
	defer cancel()
	ne := in.capture(e.Tunnel, next, &discardWriter{}, req.WithContext(ctx), e.ID)
	writeJSON(w, http.StatusOK, summarize(ne))
}

type replayError string

func (e replayError) Error() string { return string(e) }

func (in *Inspector) rebuild(e *Entry, mod ReplayRequest) (*http.Request, error) {
	method, uri := e.Method, e.URI
	if mod.Method != "" {
		method = strings.ToUpper(strings.TrimSpace(mod.Method))
	}
	if mod.Path != "" {
		uri = mod.Path
		if !strings.HasPrefix(uri, "/") {
			return nil, replayError("path " + strconv.Quote(uri) + " must start with /")
		}
	}
	var body []byte
	switch {
	case mod.BodyBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*mod.BodyBase64)
		if err != nil {
			return nil, replayError("body_base64 is not base64: " + err.Error())
		}
		body = b
	case mod.Body != nil:
		body = []byte(*mod.Body)
	default:
		if e.ReqTruncated {
			return nil, replayError("the captured body was cut at the body limit, so it cannot be replayed as it was: send a body with the replay, or raise the body limit")
		}
		body = e.ReqBody
	}
	req, err := http.NewRequest(method, "http://"+e.Host+uri, bytes.NewReader(body))
	if err != nil {
		return nil, replayError("cannot build the request: " + err.Error())
	}
	req.RequestURI = uri
	req.Host = e.Host
	req.RemoteAddr = e.RemoteAddr
	req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/1.1", 1, 1
	req.Header = e.ReqHeader.Clone()
	if mod.Headers != nil {
		h := http.Header{}
		kept := map[string]bool{}
		for _, kv := range mod.Headers {
			k, v := http.CanonicalHeaderKey(strings.TrimSpace(kv[0])), kv[1]
			if k == "" {
				continue
			}
			if sensitive[k] && strings.HasPrefix(v, "••••••") {
				if !kept[k] {
					kept[k] = true
					h[k] = append(h[k], e.ReqHeader.Values(k)...)
				}
				continue
			}
			h.Add(k, v)
		}
		req.Header = h
	}
	req.Header.Del("Content-Length")
	req.ContentLength = int64(len(body))
	if len(body) == 0 {
		req.Body = http.NoBody
	}
	return req, nil
}
