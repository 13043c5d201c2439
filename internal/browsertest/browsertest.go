// Package browsertest starts Debian's chromium, headless, for the tests
// that drive sluice's web pages (the agent's inspector, the edge's
// console) through chromedp, and takes their screenshots.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Exec finds chromium. Outside CI a machine without it skips the test with
// a clear message; in CI (CI=true) it must be there.
func Exec(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed, and CI is set: the browser tests must run in CI (apt-get install -y chromium)")
	}
	t.Skip("skipping a browser test: chromium is not installed (apt-get install -y chromium to run it)")
	return ""
}

// New starts a headless chromium with a fresh profile and a window of w×h
// and returns a context for chromedp bounded by timeout; the browser ends
// with the test.
func New(t *testing.T, w, h int, timeout time.Duration) context.Context {
	t.Helper()
	exe := Exec(t)
	opts := []chromedp.ExecAllocatorOption{
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
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(w, h),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	ctx, cancel := context.WithTimeout(bctx, timeout)
	t.Cleanup(func() {
		cancel()
		bcancel()
		acancel()
	})
	return ctx
}

// ScreenshotDir is where screenshots go: SLUICE_SCREENSHOTS (make
// screenshots writes docs/img), else the test's temporary directory.
func ScreenshotDir(t *testing.T) string {
	if d := os.Getenv("SLUICE_SCREENSHOTS"); d != "" {
		return d
	}
	return t.TempDir()
}

// Screenshot saves the visible page as a PNG.
func Screenshot(path string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		buf, err := chromedp.CaptureScreenshot()(ctx, t)
		if err != nil {
			return err
		}
		return os.WriteFile(path, buf, 0o644)
	})
}
