package inspect

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixture is an inspector serving for real on loopback, wrapping a local
// service that records what reaches it.
type fixture struct {
	in   *Inspector
	base string // http://127.0.0.1:PORT
	h    http.Handler

	mu   sync.Mutex
	seen []string // "METHOD URI body" as the service got them
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	in, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{in: in, base: "http://" + in.Addr().String()}
	service := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.seen = append(f.seen, r.Method+" "+r.RequestURI+" "+string(b))
		f.mu.Unlock()
		switch r.URL.Path {
		case "/json":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"a":1,"b":[true,null]}`)
		case "/bin":
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write([]byte{0, 1, 2, 0xff, 0xfe})
		case "/missing":
			http.NotFound(w, r)
		default:
			w.Header().Set("Set-Cookie", "session=s3cr3t")
			io.WriteString(w, "hello "+string(b))
		}
	})
	f.h = in.Wrap(0, service)
	done := make(chan error, 1)
	go func() { done <- in.Serve() }()
	t.Cleanup(func() {
		in.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return f
}

// send passes a request through the tunnel side of the inspector.
func (f *fixture) send(t *testing.T, method, uri, body string, hdr ...string) {
	t.Helper()
	r := httptest.NewRequest(method, "http://web.localhost:8080"+uri, strings.NewReader(body))
	r.RequestURI = uri // as a server reading origin-form sets it
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	f.h.ServeHTTP(httptest.NewRecorder(), r)
}

func (f *fixture) do(t *testing.T, method, path, body string, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.in.Secret())
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Authorization" && hdr[i+1] == "" {
			req.Header.Del("Authorization")
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if h := req.Header.Get("Host"); h != "" {
		req.Host = h
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (f *fixture) list(t *testing.T, query string) []Summary {
	t.Helper()
	code, b := f.do(t, "GET", "/api/requests"+query, "")
	if code != 200 {
		t.Fatalf("GET /api/requests%s: %d %s", query, code, b)
	}
	var out struct{ Requests []Summary }
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out.Requests
}

func (f *fixture) detail(t *testing.T, id uint64, query string) Detail {
	t.Helper()
	code, b := f.do(t, "GET", "/api/requests/"+strconv.FormatUint(id, 10)+query, "")
	if code != 200 {
		t.Fatalf("GET request %d: %d %s", id, code, b)
	}
	var d Detail
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestAPIRefusesWithoutSecretOrFromAnotherOrigin(t *testing.T) {
	f := newFixture(t, Config{})
	f.send(t, "GET", "/x", "")
	port := strings.TrimPrefix(f.base, "http://127.0.0.1:")
	cases := []struct {
		name string
		hdr  []string
		want int
	}{
		{"no secret", []string{"Authorization", ""}, 401},
		{"wrong secret", []string{"Authorization", "Bearer nope"}, 401},
		{"wrong cookie", []string{"Authorization", "", "Cookie", "sluice_inspector_" + port + "=nope"}, 401},
		{"foreign origin", []string{"Origin", "http://evil.example"}, 403},
		{"foreign origin on another port", []string{"Origin", "http://127.0.0.1:1"}, 403},
		{"rebound host name", []string{"Host", "evil.example:" + port}, 403},
		{"host without the port", []string{"Host", "127.0.0.1"}, 403},
		{"cross-site fetch", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"same origin", []string{"Origin", f.base}, 200},
		{"localhost alias", []string{"Host", "localhost:" + port}, 200},
		{"bearer secret", nil, 200},
	}
	for _, tc := range cases {
		for _, path := range []string{"/api/requests", "/api/requests/1"} {
			if code, b := f.do(t, "GET", path, "", tc.hdr...); code != tc.want {
				t.Errorf("%s: GET %s = %d (%s), want %d", tc.name, path, code, b, tc.want)
			}
		}
	}
	// Replay is refused the same way, and nothing reaches the service.
	if code, _ := f.do(t, "POST", "/api/requests/1/replay", "", "Origin", "http://evil.example"); code != 403 {
		t.Errorf("replay from a foreign origin = %d, want 403", code)
	}
	if code, _ := f.do(t, "POST", "/api/requests/1/replay", "", "Authorization", ""); code != 401 {
		t.Errorf("replay without the secret = %d, want 401", code)
	}
	if len(f.seen) != 1 {
		t.Fatalf("the service got %d requests, want only the original", len(f.seen))
	}
}

func TestLinkSetsCookie(t *testing.T) {
	f := newFixture(t, Config{})
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(f.in.URL())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "sluice inspector") {
		t.Fatalf("opening the printed link: %d %.200s", resp.StatusCode, b)
	}
	if resp.Request.URL.RawQuery != "" {
		t.Errorf("the secret stays in the address bar: %s", resp.Request.URL)
	}
	resp, err = c.Get(f.base + "/api/requests")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("API with the cookie: %d", resp.StatusCode)
	}
	resp, err = http.Get(f.base + "/?secret=wrong")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("a link with the wrong secret: %d, want 401", resp.StatusCode)
	}
}

func TestCaptureDetailAndMasking(t *testing.T) {
	f := newFixture(t, Config{})
	f.send(t, "POST", "/form?x=1", "name=Ada+Lovelace&lang=en", "Content-Type", "application/x-www-form-urlencoded", "Authorization", "Bearer tok123", "Cookie", "a=b")
	f.send(t, "GET", "/json", "")
	f.send(t, "GET", "/bin", "")
	list := f.list(t, "")
	if len(list) != 3 || list[0].Path != "/bin" || list[2].Path != "/form?x=1" {
		t.Fatalf("list (newest first) = %+v", list)
	}
	d := f.detail(t, list[2].ID, "")
	if d.Request.Body.Kind != "form" || len(d.Request.Body.Form) != 2 || d.Request.Body.Form[1] != [2]string{"name", "Ada Lovelace"} {
		t.Errorf("form body view = %+v", d.Request.Body)
	}
	for _, kv := range append(d.Request.Headers, d.Response.Headers...) {
		if sensitive[kv[0]] && (strings.Contains(kv[1], "tok123") || strings.Contains(kv[1], "s3cr3t") || kv[1] == "a=b") {
			t.Errorf("%s shown unmasked: %q", kv[0], kv[1])
		}
	}
	if strings.Contains(d.Curl, "tok123") {
		t.Errorf("curl shows the hidden token: %s", d.Curl)
	}
	r := f.detail(t, list[2].ID, "?reveal=1")
	if !strings.Contains(r.Curl, "'Authorization: Bearer tok123'") || !strings.Contains(r.Curl, "-X 'POST' 'http://web.localhost:8080/form?x=1'") || !strings.Contains(r.Curl, "--data-raw 'name=Ada+Lovelace&lang=en'") {
		t.Errorf("revealed curl = %s", r.Curl)
	}
	j := f.detail(t, list[1].ID, "")
	if j.Response.Body.Kind != "json" || !strings.Contains(j.Response.Body.Pretty, "\n  \"a\": 1") {
		t.Errorf("json body view = %+v", j.Response.Body)
	}
	b := f.detail(t, list[0].ID, "")
	if b.Response.Body.Kind != "binary" || b.Response.Body.Size != 5 || !strings.Contains(b.Response.Body.Hex, "00 01 02 ff fe") {
		t.Errorf("binary body view = %+v", b.Response.Body)
	}
}

func TestFilters(t *testing.T) {
	f := newFixture(t, Config{})
	f.send(t, "GET", "/a", "")
	f.send(t, "POST", "/b", strings.Repeat("x", 5000), "X-Trace", "abc-123")
	f.send(t, "GET", "/missing", "")
	cases := map[string][]string{
		"?method=post":         {"/b"},
		"?path=miss":           {"/missing"},
		"?status=4xx":          {"/missing"},
		"?status=200":          {"/b", "/a"},
		"?min_size=4000":       {"/b"},
		"?max_size=100":        {"/missing", "/a"},
		"?header=x-trace:+abc": {"/b"},
		"?min_duration_ms=0":   {"/missing", "/b", "/a"},
		"?limit=1":             {"/missing"},
		"?header=set-cookie":   {"/b", "/a"}, // the name matches; the hidden value never does
		"?header=s3cr3t":       {},
	}
	for q, want := range cases {
		var got []string
		for _, s := range f.list(t, q) {
			got = append(got, s.Path)
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: got %v, want %v", q, got, want)
		}
	}
	if code, _ := f.do(t, "GET", "/api/requests?status=abc", ""); code != 400 {
		t.Errorf("a bad filter: %d, want 400", code)
	}
}

func TestReplayAndModify(t *testing.T) {
	f := newFixture(t, Config{})
	f.send(t, "POST", "/hook?n=1", `{"event":"paid"}`, "Content-Type", "application/json", "Authorization", "Bearer tok")
	id := f.list(t, "")[0].ID
	code, b := f.do(t, "POST", "/api/requests/"+strconv.FormatUint(id, 10)+"/replay", "")
	if code != 200 {
		t.Fatalf("replay: %d %s", code, b)
	}
	mod := `{"method":"PUT","path":"/hook?n=2","headers":[["Content-Type","text/plain"],["Authorization","` + masked("Bearer tok") + `"]],"body":"changed"}`
	if code, b := f.do(t, "POST", "/api/requests/"+strconv.FormatUint(id, 10)+"/replay", mod); code != 200 {
		t.Fatalf("modified replay: %d %s", code, b)
	}
	want := []string{`POST /hook?n=1 {"event":"paid"}`, `POST /hook?n=1 {"event":"paid"}`, `PUT /hook?n=2 changed`}
	if strings.Join(f.seen, "|") != strings.Join(want, "|") {
		t.Fatalf("the service got %q, want %q", f.seen, want)
	}
	list := f.list(t, "")
	if len(list) != 3 || !list[0].Replay || list[0].ReplayOf != id || !list[1].Replay || list[2].Replay {
		t.Fatalf("replays not marked: %+v", list)
	}
	d := f.detail(t, list[0].ID, "?reveal=1")
	var auth string
	for _, kv := range d.Request.Headers {
		if kv[0] == "Authorization" {
			auth = kv[1]
		}
	}
	if auth != "Bearer tok" {
		t.Errorf("a masked header sent back kept %q, want the captured value", auth)
	}
	if code, _ := f.do(t, "POST", "/api/requests/999/replay", ""); code != 404 {
		t.Errorf("replaying an unknown id: %d, want 404", code)
	}
	if code, _ := f.do(t, "POST", "/api/requests/1/replay", `{"bogus":1}`); code != 400 {
		t.Errorf("replay with an unknown field: %d, want 400", code)
	}
}

// TestRingStaysBounded: under many large requests the ring keeps within its
// count and byte budget, and bodies are cut at the limit.
func TestRingStaysBounded(t *testing.T) {
	f := newFixture(t, Config{BodyLimit: 1000, MaxRequests: 50, MaxBytes: 20_000})
	big := strings.Repeat("z", 10_000)
	for i := 0; i < 300; i++ {
		f.send(t, "POST", "/"+strconv.Itoa(i), big)
	}
	n, bytes := f.in.ring.usage()
	if n > 50 || bytes > 20_000 {
		t.Fatalf("ring holds %d entries, %d bytes; limits 50 and 20000", n, bytes)
	}
	list := f.list(t, "")
	if len(list) != n || list[0].Path != "/299" {
		t.Fatalf("list has %d entries (ring %d), newest %+v", len(list), n, list[0])
	}
	d := f.detail(t, list[0].ID, "")
	if !d.Request.Body.Truncated || d.Request.Body.Captured != 1000 || d.Request.Body.Size != 10_000 {
		t.Fatalf("body kept %d of %d (truncated %v), want 1000 of 10000", d.Request.Body.Captured, d.Request.Body.Size, d.Request.Body.Truncated)
	}
	if code, b := f.do(t, "POST", "/api/requests/"+strconv.FormatUint(list[0].ID, 10)+"/replay", ""); code != 400 || !strings.Contains(string(b), "body limit") {
		t.Fatalf("replaying a cut body: %d %s, want 400 naming the body limit", code, b)
	}
	if code, _ := f.do(t, "GET", "/api/requests/1", ""); code != 404 {
		t.Fatalf("an evicted entry: %d, want 404", code)
	}
}

func TestEventsStreamNewRequests(t *testing.T) {
	f := newFixture(t, Config{})
	req, _ := http.NewRequest("GET", f.base+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+f.in.Secret())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil { // retry:
		t.Fatal(err)
	}
	// The subscription is in place once the first bytes arrived.
	for i := 0; i < 3; i++ {
		f.send(t, "GET", "/live/"+strconv.Itoa(i), "")
	}
	for i := 0; i < 3; i++ {
		var data string
		for ok := false; !ok; {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			data, ok = strings.CutPrefix(strings.TrimSpace(line), "data: ")
		}
		var s Summary
		if err := json.Unmarshal([]byte(data), &s); err != nil {
			t.Fatal(err)
		}
		if s.Path != "/live/"+strconv.Itoa(i) {
			t.Fatalf("event %d: %+v", i, s)
		}
	}
}

func TestDefaultPortMovesOnWhenTaken(t *testing.T) {
	ln, err := net.Listen("tcp", DefaultAddr)
	if err != nil {
		t.Skipf("cannot hold %s for the test: %v", DefaultAddr, err)
	}
	defer ln.Close()
	in, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if in.Addr().String() == DefaultAddr {
		t.Fatal("bound the taken port")
	}
	if !strings.HasPrefix(in.URL(), "http://127.0.0.1:") || !strings.Contains(in.URL(), "?secret="+in.Secret()) {
		t.Fatalf("URL %s", in.URL())
	}
	_, err = New(Config{Addr: DefaultAddr})
	var le *ListenError
	if !errors.As(err, &le) {
		t.Fatalf("an explicit address taken: %v, want a *ListenError", err)
	}
}

func TestConfigErrors(t *testing.T) {
	_, err := New(Config{MaxRequests: -1})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "MaxRequests" {
		t.Fatalf("%v", err)
	}
}
