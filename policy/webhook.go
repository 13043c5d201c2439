package policy

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxWebhookBody bounds the body read into memory to check its signature.
const MaxWebhookBody = 5 << 20

const defaultTolerance = 5 * time.Minute

type webhook struct {
	provider  string
	secret    []byte
	tolerance time.Duration
	header    string
	fails     *failures
}

func newWebhook(p *Policy, c *VerifyWebhook) (*webhook, error) {
	w := &webhook{provider: strings.ToLower(c.Provider), secret: []byte(c.Secret.reveal()), tolerance: time.Duration(c.Tolerance), header: c.Header}
	switch w.provider {
	case "github", "stripe", "slack":
		if w.header != "" {
			return nil, fmt.Errorf("header is only for the hmac provider: %s has its own", w.provider)
		}
	case "hmac":
		if w.header == "" {
			w.header = "X-Signature-256"
		}
	default:
		return nil, fmt.Errorf("provider %q is unknown (known: github, stripe, slack, hmac)", c.Provider)
	}
	if len(w.secret) == 0 {
		return nil, fmt.Errorf("secret is empty: give the signing secret the %s dashboard shows", w.provider)
	}
	if w.tolerance == 0 {
		w.tolerance = defaultTolerance
	}
	w.fails = newFailures(p.opts.MaxClients)
	return w, nil
}

func (*webhook) kind() string { return "verify-webhook" }

func (w *webhook) request(x *exchange) *Decision {
	addr := x.in.client.Addr()
	if d := w.fails.locked(x, "requests with bad signatures"); d != nil {
		return d
	}
	body, err := io.ReadAll(io.LimitReader(x.r.Body, MaxWebhookBody+1))
	if err != nil {
		return x.refuse(http.StatusBadRequest, "Body unreadable", "The request body could not be read: "+err.Error())
	}
	if len(body) > MaxWebhookBody {
		return x.refuse(http.StatusRequestEntityTooLarge, "Body too large", fmt.Sprintf("A signed webhook body may be at most %d bytes.", MaxWebhookBody))
	}
	if err := w.verify(x.r.Header, body, x.in.now); err != nil {
		w.fails.fail(addr, x.in.now)
		return x.refuse(http.StatusForbidden, "Signature refused", "The webhook signature did not verify: "+err.Error()+".")
	}
	_ = x.r.Body.Close()
	x.r.Body = io.NopCloser(bytes.NewReader(body))
	x.r.ContentLength = int64(len(body))
	x.r.TransferEncoding = nil
	x.r.Header.Del("Transfer-Encoding")
	x.r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

var errNoSignature = errors.New("the signature header is missing")

func (w *webhook) verify(h http.Header, body []byte, now time.Time) error {
	switch w.provider {
	case "github":
		sig, ok := strings.CutPrefix(h.Get("X-Hub-Signature-256"), "sha256=")
		if !ok {
			return errNoSignature
		}
		return w.match(sig, body)
	case "stripe":
		return w.verifyStripe(h.Get("Stripe-Signature"), body, now)
	case "slack":
		ts := h.Get("X-Slack-Request-Timestamp")
		sig, ok := strings.CutPrefix(h.Get("X-Slack-Signature"), "v0=")
		if !ok || ts == "" {
			return errNoSignature
		}
		if err := w.fresh(ts, now); err != nil {
			return err
		}
		return w.match(sig, []byte("v0:"+ts+":"), body)
	default:
		sig := h.Get(w.header)
		if sig == "" {
			return errNoSignature
		}
		return w.match(strings.TrimPrefix(sig, "sha256="), body)
	}
}

// verifyStripe checks "t=TIMESTAMP,v1=SIG[,v1=SIG...]": the HMAC of
// "TIMESTAMP." and the body; any v1 may match (Stripe signs with each
// active secret while one is rolled).
func (w *webhook) verifyStripe(header string, body []byte, now time.Time) error {
	if header == "" {
		return errNoSignature
	}
	var ts string
	var sigs []string
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	if ts == "" || len(sigs) == 0 {
		return errors.New("the Stripe-Signature header has no t= or no v1=")
	}
	if err := w.fresh(ts, now); err != nil {
		return err
	}
	var err error
	for _, s := range sigs {
		if err = w.match(s, []byte(ts+"."), body); err == nil {
			return nil
		}
	}
	return err
}

// fresh refuses a signed timestamp outside the tolerance: a replay of an
// old request, or a clock far off.
func (w *webhook) fresh(ts string, now time.Time) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("the signed timestamp is not a number")
	}
	d := now.Sub(time.Unix(sec, 0))
	if d > w.tolerance || d < -w.tolerance {
		return fmt.Errorf("the signed timestamp is %s away from now, over the tolerance of %s", d.Round(time.Second).Abs(), w.tolerance)
	}
	return nil
}

// match compares the hex signature with the HMAC-SHA256 of the parts in
// constant time.
func (w *webhook) match(sigHex string, parts ...[]byte) error {
	got, err := hex.DecodeString(sigHex)
	if err != nil {
		return errors.New("the signature is not hex")
	}
	mac := hmac.New(sha256.New, w.secret)
	for _, p := range parts {
		mac.Write(p)
	}
	if !hmac.Equal(got, mac.Sum(nil)) {
		return errors.New("the signature does not match the body")
	}
	return nil
}
