// Package browsertest drives Debian's chromium, headless, for the tests
// that need a real browser (the inspector's page, the edge's sign-in).
// Outside CI a machine without chromium skips those tests with a clear
// message; in CI (CI=true) chromium must be there.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Chromium returns chromium's path, or skips (fails in CI) naming what
// needs it.
func Chromium(t testing.TB, what string) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("chromium is not installed, and CI is set: %s must run in CI (apt-get install -y chromium)", what)
	}
	t.Skipf("skipping %s: chromium is not installed (apt-get install -y chromium to run it)", what)
	return ""
}

// Page is one headless browser tab, closed when the test ends.
type Page struct {
	Ctx context.Context
	t   testing.TB
}

// Open starts chromium with a profile of the test's own and returns a tab
// whose every step must finish within timeout.
func Open(t testing.TB, what string, timeout time.Duration, extra ...chromedp.ExecAllocatorOption) *Page {
	t.Helper()
	exe := Chromium(t, what)
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.NoDefaultBrowserCheck,
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	}, extra...)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	ctx, cancel := context.WithTimeout(bctx, timeout)
	t.Cleanup(func() { cancel(); bcancel(); acancel() })
	return &Page{Ctx: ctx, t: t}
}

// Do runs steps, failing the test with what on error.
func (p *Page) Do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.Ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

// Text returns the text of the first element matching the CSS selector.
func (p *Page) Text(sel string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.Ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		p.t.Fatalf("reading %s: %v", sel, err)
	}
	return v
}
