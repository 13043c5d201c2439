package agent

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sluicehq/sluice/control"
)

// TestHTTPBodiesStream proves bodies are streamed, not buffered, through the
// edge and the agent, in both directions: the client's upload does not end
// until the local service has read its first MiB, and the service's response
// does not end until the client has read its first MiB. A proxy that held a
// whole body before forwarding it would deadlock here.
func TestHTTPBodiesStream(t *testing.T) {
	const chunk = 1 << 20
	serviceGotChunk := make(chan struct{})
	clientGotChunk := make(chan struct{})
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/up":
			if _, err := io.ReadFull(r.Body, make([]byte, chunk)); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			close(serviceGotChunk)
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, "done")
		case "/down":
			w.Write(bytes.Repeat([]byte("d"), chunk))
			http.NewResponseController(w).Flush()
			select {
			case <-clientGotChunk:
			case <-time.After(20 * time.Second):
				return // the test reports the failure
			}
			w.Write([]byte("end"))
		}
	}))
	defer svc.Close()

	for _, logReq := range []bool{false, true} {
		name := map[bool]string{false: "raw", true: "logged"}[logReq]
		t.Run(name, func(t *testing.T) {
			serviceGotChunk = make(chan struct{})
			clientGotChunk = make(chan struct{})
			e := startEdge(t, nil)
			as, _ := runAgent(t, e, nil, Tunnel{Kind: control.KindHTTP, Name: "s", Local: svc.Listener.Addr().String(), LogRequests: logReq})
			c := clientFor(e)
			defer c.CloseIdleConnections()

			pr, pw := io.Pipe()
			go func() {
				pw.Write(bytes.Repeat([]byte("u"), chunk))
				select {
				case <-serviceGotChunk:
					pw.Write([]byte("tail"))
					pw.Close()
				case <-time.After(20 * time.Second):
					pw.CloseWithError(io.ErrUnexpectedEOF)
				}
			}()
			resp, err := c.Post(as[0].URL+"/up", "application/octet-stream", pr)
			if err != nil {
				t.Fatalf("upload: %v (the service never saw the first MiB before the body ended?)", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "done" {
				t.Fatalf("upload: %d %q", resp.StatusCode, body)
			}

			resp, err = c.Get(as[0].URL + "/down")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if _, err := io.ReadFull(resp.Body, make([]byte, chunk)); err != nil {
				t.Fatalf("download: first MiB: %v", err)
			}
			close(clientGotChunk)
			rest, err := io.ReadAll(resp.Body)
			if err != nil || string(rest) != "end" {
				t.Fatalf("download tail: %q, %v", rest, err)
			}
		})
	}
}
