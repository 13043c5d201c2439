package policy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The signatures below are made the way each provider documents them.

func hmacHex(secret string, parts ...string) string {
	m := hmac.New(sha256.New, []byte(secret))
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// GitHub: X-Hub-Signature-256: sha256=HEX(HMAC-SHA256(secret, body)).
func signGitHub(r *http.Request, secret, body string) {
	r.Header.Set("X-Hub-Signature-256", "sha256="+hmacHex(secret, body))
}

// Stripe: Stripe-Signature: t=UNIX,v1=HEX(HMAC-SHA256(secret, "UNIX." + body)).
func signStripe(r *http.Request, secret, body string, at time.Time) {
	ts := strconv.FormatInt(at.Unix(), 10)
	r.Header.Set("Stripe-Signature", "t="+ts+",v1="+hmacHex(secret, ts+"."+body))
}

// Slack: X-Slack-Signature: v0=HEX(HMAC-SHA256(secret, "v0:" + ts + ":" + body))
// with X-Slack-Request-Timestamp: ts.
func signSlack(r *http.Request, secret, body string, at time.Time) {
	ts := strconv.FormatInt(at.Unix(), 10)
	r.Header.Set("X-Slack-Request-Timestamp", ts)
	r.Header.Set("X-Slack-Signature", "v0="+hmacHex(secret, "v0:"+ts+":"+body))
}

func post(body string) *http.Request {
	return httptest.NewRequest(http.MethodPost, "http://hooks.test/hook", strings.NewReader(body))
}

func webhookPolicy(t *testing.T, c *clock, provider, extra string) *Policy {
	return compileYAML(t, c, fmt.Sprintf("on_http_request:\n  - name: %s hook\n    actions:\n      - type: verify-webhook\n        config: {provider: %s, secret: whsec_test%s}\n", provider, provider, extra))
}

// echo is an app that answers with the body it received.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Length", strconv.FormatInt(r.ContentLength, 10))
	_, _ = w.Write(b)
})

func TestVerifyWebhook(t *testing.T) {
	const body = `{"action":"opened","number":1}`
	c := newClock()
	cases := []struct {
		provider string
		extra    string
		sign     func(r *http.Request, body string, at time.Time)
		stale    bool // the scheme signs a timestamp
	}{
		{"github", "", func(r *http.Request, b string, _ time.Time) { signGitHub(r, "whsec_test", b) }, false},
		{"stripe", "", func(r *http.Request, b string, at time.Time) { signStripe(r, "whsec_test", b, at) }, true},
		{"slack", "", func(r *http.Request, b string, at time.Time) { signSlack(r, "whsec_test", b, at) }, true},
		{"hmac", ", header: X-Body-Signature", func(r *http.Request, b string, _ time.Time) {
			r.Header.Set("X-Body-Signature", hmacHex("whsec_test", b))
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.provider, func(t *testing.T) {
			p := webhookPolicy(t, c, tc.provider, tc.extra)
			client := 0
			do := func(r *http.Request) result {
				client++ // a fresh address each time: failures are slowed per address
				return serve(p, r, fmt.Sprintf("192.0.2.%d:1", client), echo)
			}

			r := post(body)
			tc.sign(r, body, c.Now())
			res := do(r)
			wantStatus(t, res, 200)
			if res.rec.Body.String() != body || res.rec.Header().Get("X-Length") != strconv.Itoa(len(body)) {
				t.Fatalf("the app got %q (length %s)", res.rec.Body.String(), res.rec.Header().Get("X-Length"))
			}

			r = post(body + " ")
			tc.sign(r, body, c.Now())
			res = do(r)
			wantStatus(t, res, 403)
			if !res.d.Refused || res.d.Action != "verify-webhook" || !strings.Contains(res.rec.Body.String(), "does not match") {
				t.Fatalf("tampered body: %+v %q", res.d, res.rec.Body.String())
			}

			// Signed with another secret.
			resigned := post(body)
			switch tc.provider {
			case "github":
				signGitHub(resigned, "other", body)
			case "stripe":
				signStripe(resigned, "other", body, c.Now())
			case "slack":
				signSlack(resigned, "other", body, c.Now())
			default:
				resigned.Header.Set("X-Body-Signature", hmacHex("other", body))
			}
			wantStatus(t, do(resigned), 403)

			wantStatus(t, do(post(body)), 403) // unsigned

			if tc.stale {
				r = post(body)
				tc.sign(r, body, c.Now().Add(-6*time.Minute))
				res = do(r)
				wantStatus(t, res, 403)
				if !strings.Contains(res.rec.Body.String(), "tolerance") {
					t.Fatalf("stale timestamp: %q", res.rec.Body.String())
				}
				r = post(body)
				tc.sign(r, body, c.Now().Add(-4*time.Minute))
				wantStatus(t, do(r), 200)
			}
		})
	}
}

func TestStripeAcceptsAnyActiveSecretAndCustomTolerance(t *testing.T) {
	const body = `{"id":"evt_1"}`
	c := newClock()
	p := webhookPolicy(t, c, "stripe", ", tolerance: 30s")
	ts := strconv.FormatInt(c.Now().Unix(), 10)
	r := post(body)
	// While a secret is rolled Stripe signs with both; either may match.
	r.Header.Set("Stripe-Signature", "t="+ts+",v1="+hmacHex("old", ts+"."+body)+",v1="+hmacHex("whsec_test", ts+"."+body)+",v0=ignored")
	wantStatus(t, serve(p, r, "192.0.2.1:1", echo), 200)
	r = post(body)
	signStripe(r, "whsec_test", body, c.Now().Add(-time.Minute))
	wantStatus(t, serve(p, r, "192.0.2.2:1", echo), 403)
}

func TestWebhookFailuresAreSlowedAndBodiesBounded(t *testing.T) {
	c := newClock()
	p := webhookPolicy(t, c, "github", "")
	for i := 0; i < freeFailures; i++ {
		wantStatus(t, serve(p, post("x"), "192.0.2.1:1", echo), 403)
	}
	r := post("x")
	signGitHub(r, "whsec_test", "x")
	res := serve(p, r, "192.0.2.1:1", echo)
	wantStatus(t, res, 429)
	if res.rec.Header().Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	big := strings.Repeat("a", MaxWebhookBody+1)
	r = post(big)
	signGitHub(r, "whsec_test", big)
	wantStatus(t, serve(p, r, "192.0.2.2:1", echo), 413)
}
